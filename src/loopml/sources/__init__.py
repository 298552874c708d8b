"""Sources: where data comes from (plugin kind ``loopml.sources``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopml._plugins import resolve
from loopml.sources.base import Source, read_all
from loopml.sources.files import CsvSource, ParquetSource

__all__ = ["CsvSource", "ParquetSource", "Source", "open_source", "read_all"]


def open_source(
    kind: str, path: str, options: dict[str, Any] | None = None, base_dir: Path | None = None
) -> Source:
    """Create the source plugin ``kind`` for ``path`` (relative paths start at ``base_dir``)."""
    factory = resolve("sources", kind)
    full = path if (base_dir is None or "://" in path or Path(path).is_absolute()) else str(base_dir / path)
    source: Source = factory(full, **(options or {}))
    return source
