"""The prediction journal: prediction records on local disk before the API acknowledges them.

Each serving process appends to its own segment files under ``<state dir>/journal/``, named
``<pid>-<start ns>-<n>.jsonl`` and holding one orjson record per line. A request's records go in
with one ``os.write`` before its response is sent, so once a client has a response the kernel holds
the records even if the process is killed with ``kill -9`` right after. With ``fsync=True`` each
write is also flushed to the disk (surviving a power loss, at the price of a disk flush per
request); it is off by default.

A process holds an exclusive ``flock`` on each segment it writes; the lock goes away with the
process however it ends. :func:`abandoned_segments` finds the segments nobody holds (a dead
process's); ``loopml.store.replay_journal`` moves their records into the store, skipping ids already
there, then deletes them. That runs when the API starts, in ``loopml worker`` and before
``loopml monitor`` reads the log.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

try:  # POSIX; elsewhere segments are never seen as abandoned while a process may own them
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal", "Segment", "abandoned_segments", "decode_record", "encode_records"]

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"


def encode_records(rows: Sequence[dict[str, Any]]) -> bytes:
    """Prediction records as newline-terminated JSON lines (datetimes as RFC 3339 with offset)."""
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(row, default=str, option=option) for row in rows)


def decode_record(line: bytes) -> dict[str, Any]:
    """One journal line back into a record for :func:`~loopml.store.write_predictions`."""
    row: dict[str, Any] = orjson.loads(line)
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row


def _try_lock(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


@dataclass
class Segment:
    """One open segment file of this process: records appended, and how many are not in the store yet."""

    path: Path
    fd: int
    size: int = 0
    pending: int = 0
    failed: bool = False
    closed: bool = field(default=False)


class Journal:
    """This process's append-only journal in ``directory`` (see the module docstring).

    ``append`` is called on the request path and returns the segment the records went to; the
    prediction log writer calls ``committed(segment, n)`` once ``n`` of them are in the store. A
    segment whose records are all committed is emptied (or, once past ``segment_bytes`` and rotated,
    deleted), so the journal stays small while the store keeps up.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, fsync: bool = False, segment_bytes: int = 8 << 20
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync, self.segment_bytes = fsync, segment_bytes
        self._prefix = f"{os.getpid()}-{time.time_ns()}"
        self._count = 0
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._current = self._open_segment()

    def _open_segment(self) -> Segment:
        self._count += 1
        path = self.directory / f"{self._prefix}-{self._count}{SUFFIX}"
        # created under a name replay ignores, locked, then renamed: never visible unlocked
        fresh = path.with_suffix(".new")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        _try_lock(fd)
        os.rename(fresh, path)
        segment = Segment(path, fd)
        self._segments.append(segment)
        return segment

    def append(self, rows: Sequence[dict[str, Any]]) -> Segment:
        """Write ``rows`` with one ``os.write`` (and ``fsync`` when asked); the segment they are in."""
        data = encode_records(rows)
        with self._lock:
            segment = self._current
            written = os.write(segment.fd, data)
            while written < len(data):  # a short write happens only on a full disk; finish or raise
                written += os.write(segment.fd, data[written:])
            if self.fsync:
                os.fsync(segment.fd)
            segment.size += len(data)
            segment.pending += len(rows)
            return segment

    def committed(self, segment: Segment, rows: int, *, ok: bool = True) -> None:
        """``rows`` records of ``segment`` were handled: stored (``ok``), or failed and left for replay."""
        with self._lock:
            segment.pending -= rows
            segment.failed = segment.failed or not ok
            self._tidy()

    def _tidy(self) -> None:
        current = self._current
        if current.failed or current.size >= self.segment_bytes:
            current.closed = True
            self._current = self._open_segment()
        elif current.pending == 0 and current.size:
            os.ftruncate(current.fd, 0)  # O_APPEND: the next write starts at offset 0 again
            current.size = 0
        for segment in [s for s in self._segments if s.closed and s.pending == 0]:
            self._segments.remove(segment)
            if not segment.failed:
                segment.path.unlink(missing_ok=True)
            os.close(segment.fd)  # a failed segment stays on disk, unlocked: replay picks it up

    def close(self) -> None:
        """Close every segment; delete those fully committed, leave the rest for :func:`replay_journal`."""
        with self._lock:
            for segment in self._segments:
                segment.closed = True
            self._current.closed = True
            for segment in self._segments:
                if segment.pending == 0 and not segment.failed:
                    segment.path.unlink(missing_ok=True)
                else:
                    log.warning(
                        "prediction journal %s keeps %d records not yet in the store; they are "
                        "replayed at the next start",
                        segment.path,
                        segment.pending,
                    )
                os.close(segment.fd)
            self._segments.clear()


def _read_records(path: Path, data: bytes) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(decode_record(line))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            # only a torn last line (power loss without fsync) can look like this; say so, go on
            log.warning("skipping unreadable record at %s line %d", path, number)
    return records


def abandoned_segments(
    directory: str | os.PathLike[str],
) -> Generator[tuple[Path, list[dict[str, Any]]], None, None]:
    """Each segment in ``directory`` that no process holds, locked, with its records.

    A segment is abandoned when its writer died, or closed it with records the store did not take.
    The segment is deleted when the consumer asks for the next one, so a consumer that fails on
    a segment (the store is down) leaves it for a later replay; close the generator on error
    (``contextlib.closing``) to release the lock at once.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # another process replayed and removed it meanwhile
        try:
            if not _try_lock(fd):
                continue  # a live process owns it
            yield path, _read_records(path, path.read_bytes())
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
