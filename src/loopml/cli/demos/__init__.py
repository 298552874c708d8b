"""One module per ``loopml demo <name>``: each has ``run(directory) -> dict`` and ``render(summary)``."""

from __future__ import annotations

__all__: list[str] = []
