"""Durations as written in ``loopml.yaml`` (``30s``, ``10m``, ``1h``, ``7d``, ``2w``): one parser.

Examples
--------
>>> parse_duration("1d")
86400000
>>> duration("90m")
datetime.timedelta(seconds=5400)
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta

from loopml.errors import ConfigError

__all__ = ["duration", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MS = 1000


@functools.lru_cache(maxsize=1024)
def parse_duration(text: str) -> int:
    """A duration like ``30m``, ``1h``, ``7d`` or ``2w`` in milliseconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", str(text))
    if not match:
        raise ConfigError(f"duration '{text}' is not like 30m, 1h, 7d or 2w.")
    return int(match.group(1)) * _UNITS[match.group(2)] * _MS


def duration(text: str) -> timedelta:
    """A duration like ``30m``, ``1h``, ``7d`` or ``2w`` as a :class:`~datetime.timedelta`."""
    return timedelta(milliseconds=parse_duration(text))
