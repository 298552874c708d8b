"""A small "case management" system that receives fraud cases as Standard Webhooks.

It stands in for the CRM or case tool a fraud team works in: a real HTTP server (standard library
only) that verifies each request's signature (``webhook-id``, ``webhook-timestamp``,
``webhook-signature`` under a ``whsec_`` secret; a timestamp more than five minutes away is refused),
de-duplicates by ``webhook-id`` and stores each case once in an SQLite file. Every request is also
logged with its outcome (``accepted``, ``duplicate``, ``rejected``), so tests and the demo can check
"exactly once per idempotency key". Start it from Python::

    with CaseReceiver(port=0, secret="whsec_...") as receiver:
        print(receiver.url)          # http://127.0.0.1:<port>/cases

or as a process: ``python -m loopml.examples.fraud.receiver --port 8900 --secret-env CASES_SECRET``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["CaseReceiver", "new_secret", "verify"]

TOLERANCE_S = 300
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    webhook_id TEXT PRIMARY KEY, received_at REAL NOT NULL, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, webhook_id TEXT, outcome TEXT NOT NULL, reason TEXT,
    received_at REAL NOT NULL
);
"""


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def _keys(secrets: str | list[str]) -> list[bytes]:
    items = secrets.split() if isinstance(secrets, str) else list(secrets)
    return [base64.b64decode(s.removeprefix("whsec_")) for s in items]


def verify(
    keys: list[bytes], headers: Any, body: bytes, *, now: float | None = None, tolerance: float = TOLERANCE_S
) -> str:
    """Check a Standard Webhooks request; returns its ``webhook-id`` or raises ``ValueError(reason)``."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise ValueError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent = int(timestamp)
    except ValueError:
        raise ValueError("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - sent) > tolerance:
        raise ValueError("stale or future webhook-timestamp")
    signed = f"{msg_id}.{sent}.".encode() + body
    expected = [base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()) for k in keys]
    for item in signatures.split():
        version, _, value = item.partition(",")
        if version == "v1" and any(hmac.compare_digest(value.encode(), e) for e in expected):
            return str(msg_id)
    raise ValueError("no valid signature")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: a sender reuses its connection
    disable_nagle_algorithm = True  # headers and body are two writes; do not wait for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the requests table is the log
        return

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path != receiver.path:
            self._answer(404, {"error": "not found"})
            return
        forced = receiver._forced_answer()
        if forced is not None:
            self._answer(*forced)
            return
        status, answer = receiver._accept(self.headers, body)
        self._answer(status, answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: CaseReceiver


class CaseReceiver:
    """The example case-management receiver (see the module docstring)."""

    def __init__(
        self,
        *,
        secret: str | list[str],
        port: int = 0,
        host: str = "127.0.0.1",
        path: str = "/cases",
        db_path: str | os.PathLike[str] | None = None,
        tolerance_s: float = TOLERANCE_S,
    ) -> None:
        self.keys = _keys(secret)
        self.host, self.port, self.path, self.tolerance_s = host, port, path, tolerance_s
        if db_path is None:
            db_path = Path(tempfile.mkdtemp(prefix="loopml-cases-")) / "cases.db"
        self.db_path = Path(db_path)
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._forced: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where to send cases: ``http://host:port/cases``."""
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self) -> CaseReceiver:
        """Listen (``port=0`` picks a free port, kept across a stop and a restart)."""
        self._server = _Server((self.host, self.port), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="case-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (the stored cases stay; ``start()`` again to come back up)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        """Stop and close the database."""
        self.stop()
        self._db.close()

    def __enter__(self) -> CaseReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail_next(self, count: int, status: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (e.g. 503 + Retry-After, 410), for drills."""
        with self._lock:
            self._forced.extend([(status, {"error": f"forced {status}"}, dict(headers or {}))] * count)

    def _forced_answer(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        with self._lock:
            return self._forced.pop(0) if self._forced else None

    def _log(self, webhook_id: str | None, outcome: str, reason: str | None = None) -> None:
        self._db.execute(
            "INSERT INTO requests (webhook_id, outcome, reason, received_at) VALUES (?, ?, ?, ?)",
            (webhook_id, outcome, reason, time.time()),
        )

    def _accept(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            try:
                msg_id = verify(self.keys, headers, body, tolerance=self.tolerance_s)
            except ValueError as exc:
                self._log(headers.get("webhook-id"), "rejected", str(exc))
                return 401, {"error": str(exc)}
            try:
                payload = json.loads(body)
            except ValueError:
                self._log(msg_id, "rejected", "body is not JSON")
                return 400, {"error": "body is not JSON"}
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO cases (webhook_id, received_at, payload) VALUES (?, ?, ?)",
                (msg_id, time.time(), json.dumps(payload)),
            ).rowcount
            self._log(msg_id, "accepted" if inserted else "duplicate")
        return 200, {"status": "accepted" if inserted else "duplicate", "id": msg_id}

    def cases(self) -> list[dict[str, Any]]:
        """Every stored case (oldest first): ``{"webhook_id": ..., **payload}``."""
        with self._lock:
            rows = self._db.execute("SELECT webhook_id, payload FROM cases ORDER BY received_at").fetchall()
        return [{"webhook_id": w, **json.loads(p)} for w, p in rows]

    def outcomes(self) -> dict[str, int]:
        """How many requests were ``accepted``, ``duplicate`` or ``rejected``."""
        with self._lock:
            rows = self._db.execute("SELECT outcome, COUNT(*) FROM requests GROUP BY outcome").fetchall()
        return {"accepted": 0, "duplicate": 0, "rejected": 0, **dict(rows)}

    def accepted_per_id(self) -> dict[str, int]:
        """For each ``webhook-id``: how many times it was processed (accepted), which must be once."""
        with self._lock:
            rows = self._db.execute(
                "SELECT webhook_id, COUNT(*) FROM requests WHERE outcome = 'accepted' GROUP BY webhook_id"
            ).fetchall()
        return dict(rows)


def main(argv: list[str] | None = None) -> None:
    """Run the receiver until SIGTERM or Ctrl+C; prints its URL on the first line of stdout."""
    parser = argparse.ArgumentParser(description="Example fraud-case receiver (Standard Webhooks).")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--db", default="cases.db", help="SQLite file for the cases.")
    parser.add_argument("--secret-env", default="CASES_SECRET", help="Variable holding the whsec_ secret(s).")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env)
    if not secret:
        sys.exit(f"error: set {args.secret_env} to the signing secret (whsec_<base64>).")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with CaseReceiver(secret=secret, port=args.port, host=args.host, db_path=args.db) as receiver:
        print(receiver.url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
