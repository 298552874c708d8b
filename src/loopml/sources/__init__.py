"""Sources: where data comes from (plugin kind ``loopml.sources``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopml._plugins import resolve
from loopml.config import SourceConfig
from loopml.sources.base import IncrementalSource, SchemaSource, Source, read_all, source_columns
from loopml.sources.files import CsvSource, ParquetSource, check_input_path
from loopml.sources.sql import SqlSource, resolve_sqlite_url

__all__ = [
    "CsvSource",
    "IncrementalSource",
    "ParquetSource",
    "SchemaSource",
    "Source",
    "SqlSource",
    "check_input_path",
    "open_source",
    "read_all",
    "source_columns",
    "source_from_config",
]


def open_source(
    kind: str, path: str, options: dict[str, Any] | None = None, base_dir: Path | None = None
) -> Source:
    """Create the source plugin ``kind`` for ``path`` (relative paths start at ``base_dir``)."""
    factory = resolve("sources", kind)
    full = path if (base_dir is None or "://" in path or Path(path).is_absolute()) else str(base_dir / path)
    source: Source = factory(full, **(options or {}))
    return source


def source_from_config(config: SourceConfig, base_dir: Path) -> Source:
    """The source that ``source:`` in ``loopml.yaml`` describes."""
    if config.path is not None:
        return open_source(config.kind, config.path, config.options, base_dir=base_dir)
    url = resolve_sqlite_url(str(config.url), base_dir)
    extra = {k: v for k, v in (("table", config.table), ("query", config.query)) if v is not None}
    source: Source = resolve("sources", config.kind)(url, **extra, **config.options)
    return source
