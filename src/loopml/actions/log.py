"""The ``log`` action: one JSON line per delivery, to a logger or an append-only file.

Options (``actions.endpoints.<name>`` in ``loopml.yaml``)::

    audit: {kind: log, path: logs/actions.jsonl}          # a file (relative to the project)
    trace: {kind: log, logger: loopml.actions, level: info}  # or the logging system

- ``path``: append to this JSON-lines file (created with its folders); without it, lines go to the
  logger named by ``logger`` (default ``loopml.actions``) at ``level`` (default info).
- ``fsync``: flush each line to disk before ``send`` returns (default true: a delivered action is
  never lost in a crash).

A line is ``{"ts", "endpoint", "rule", "key", "attempt", "created_at", "payload"}``. In file mode a key
already in the file (within its last 8 MiB, or written since this instance opened it) is not written
again, so a worker that crashed after writing and re-sends does not duplicate the line; writers hold an
exclusive ``flock`` while they check and append, so several workers can share one file. A line torn by
a crash mid-write is left as it is and the next line starts on a fresh line. In logger mode
duplicates are suppressed per instance only (the logging system cannot be read back).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from loopml.actions._options import Options, one_line
from loopml.actions.base import Delivery, DeliveryError

__all__ = ["LogAction"]

_OPTIONS = ("path", "logger", "level", "fsync")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_TAIL = 8 * 1024 * 1024  # bytes of an existing file read for keys when it is first opened
_REMEMBER = 200_000  # keys kept in memory


class _Seen:
    """The most recent keys, bounded."""

    def __init__(self) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > _REMEMBER:
            self._keys.popitem(last=False)


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: one writer per file
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


class _JsonLinesFile:
    """Appends lines to one file, skipping keys it already holds."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path, self.fsync = path, fsync
        self.seen = _Seen()
        self._offset: int | None = None  # bytes of the file already scanned for keys
        self._torn = False  # the file does not end with a newline

    def _catch_up(self, size: int) -> None:
        """Read keys written since the last scan (by this or another process)."""
        partial = False
        if self._offset is None or size < self._offset:  # first use, or the file was rotated
            self._offset = max(0, size - _TAIL)
            partial = self._offset > 0
        if size == self._offset:
            return
        with self.path.open("rb") as file:
            file.seek(self._offset)
            data = file.read(size - self._offset)
        lines = data.split(b"\n")
        if partial:
            lines = lines[1:]  # started mid-line
        for line in lines:
            key = _key_of(line)
            if key is not None:
                self.seen.add(key)
        self._offset, self._torn = size, not data.endswith(b"\n")

    def append(self, key: str, line: bytes) -> bool:
        """Write ``line`` unless ``key`` is already in the file; True when written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _lock(fd)  # released when fd closes
            size = os.fstat(fd).st_size
            self._catch_up(size)
            if key in self.seen:
                return False
            data = (b"\n" if self._torn and size else b"") + line + b"\n"
            os.write(fd, data)
            if self.fsync:
                os.fsync(fd)
            self.seen.add(key)
            self._offset, self._torn = size + len(data), False
            return True
        finally:
            os.close(fd)


def _key_of(line: bytes) -> str | None:
    try:
        key = json.loads(line).get("key")
    except (ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


class LogAction:
    """Write each delivery as one JSON line to a file (at most once per key) or to a logger."""

    kind: ClassVar[str] = "log"
    thread_safe: ClassVar[bool] = True  # sends are serialised by a lock

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        opts = Options(self.kind, name, options, _OPTIONS)
        self.name = name
        self.path = opts.path("path", None)
        self.logger_name = str(opts.text("logger", "loopml.actions"))
        self.level = _LEVELS[opts.choice("level", list(_LEVELS), "info")]
        self.fsync = opts.flag("fsync", True)
        if self.path is not None and self.path.is_dir():
            raise opts.error(
                "path", f"is a folder ('{self.path}'); give a file name, e.g. logs/actions.jsonl"
            )
        self._file = _JsonLinesFile(self.path, self.fsync) if self.path is not None else None
        self._seen = _Seen()
        self._lock = threading.Lock()

    @staticmethod
    def line(delivery: Delivery) -> bytes:
        """The JSON line written for ``delivery`` (without the newline)."""
        record = {
            "ts": datetime.now(UTC).isoformat(),
            "endpoint": delivery.endpoint,
            "rule": delivery.rule,
            "key": delivery.key,
            "attempt": delivery.attempt,
            "created_at": delivery.created_at.isoformat(),
            "payload": dict(delivery.payload),
        }
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str).encode()

    def send(self, delivery: Delivery) -> None:
        """Write the line (once per key); raise :class:`DeliveryError` when the file cannot be written."""
        line = self.line(delivery)
        with self._lock:
            if self._file is None:
                if delivery.key not in self._seen:
                    logging.getLogger(self.logger_name).log(self.level, line.decode())
                    self._seen.add(delivery.key)
                return
            try:
                self._file.append(delivery.key, line)
            except OSError as exc:
                raise DeliveryError(f"log file '{self.path}': {one_line(exc)}", unreachable=True) from None

    def close(self) -> None:
        """Nothing stays open between sends; present for the plugin contract."""
