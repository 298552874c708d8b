"""Logging setup: plain text for people, or one JSON object per line for log collectors.

``configure_logging("json")`` (the CLI's ``--log-format json``, or ``LOOPML_LOG_FORMAT=json``)
sends every record, uvicorn's included, to stderr as one line such as::

    {"ts": "2026-11-27T06:00:00.123456+00:00", "level": "INFO", "logger": "loopml.access",
     "message": "POST /v1/models/fraud/predict 200 1.42 ms", "method": "POST",
     "path": "/v1/models/fraud/predict", "status": 200, "duration_ms": 1.42, "request_id": "..."}

Fields given with ``extra=`` (request fields of the access log, a model name, ...) become keys
of their own; an exception becomes ``exc_type`` and ``exc``.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

from loopml.errors import ConfigError

__all__ = ["LOG_FORMATS", "JsonFormatter", "configure_logging"]

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[str, ...] = ("json", "text")
_HANDLER_NAME = "loopml"
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_TEXT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _uvicorn_access(record: logging.LogRecord) -> dict[str, Any]:
    """uvicorn's access record carries (client, method, path, http version, status) as its args."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, path, _, status = args
    return {"client": client, "method": method, "path": path, "status": status}


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: ts, level, logger, message, then any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(_uvicorn_access(record))
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            payload["exc_type"] = record.exc_info[0].__name__
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is at the time of each record (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def configure_logging(
    log_format: str = "text", *, level: str | int | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """Send loopml's and uvicorn's records to ``stream`` (stderr) as ``json`` or ``text`` lines.

    Idempotent: a second call replaces the handler the first one installed. ``level`` defaults to
    ``LOOPML_LOG_LEVEL``, else INFO for json (access log included) and WARNING for text. Returns
    the handler.
    """
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"log format '{log_format}' is not one of {', '.join(LOG_FORMATS)}.")
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    default = "INFO" if log_format == "json" else "WARNING"  # text: as quiet as before, for people
    root.setLevel(level or os.environ.get("LOOPML_LOG_LEVEL", default).upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()  # uvicorn's own text handlers would print each line twice
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)  # a level an earlier server set would filter records
    return handler
