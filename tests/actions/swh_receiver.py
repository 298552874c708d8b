"""A webhook receiver that checks every request with the reference Standard Webhooks library
(``standardwebhooks``), not with loopml's own code, and logs each ``webhook-id`` it accepts.

Run in a thread (``SwhReceiver(...).start()``) or as its own process
(``python swh_receiver.py --secret-env VAR --db FILE [--port N]``: prints its URL, then serves until
SIGTERM). Its SQLite log outlives stops and restarts on the same port, so a test takes it down and
brings it back to make an outage.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, webhook_id TEXT, outcome TEXT NOT NULL,
    payload TEXT, received_at REAL NOT NULL
);
"""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        status, outcome = self.server.receiver.accept({k.lower(): v for k, v in self.headers.items()}, body)
        data = json.dumps({"status": outcome}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: SwhReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a sender killed mid-request resets its connection: expected here, not news


class SwhReceiver:
    """Verifies with ``standardwebhooks.Webhook(secret).verify``; de-duplicates by ``webhook-id``."""

    def __init__(self, secret: str, db_path: Path, port: int = 0) -> None:
        self.webhook = Webhook(secret)
        self.db_path, self.port = Path(db_path), port
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> SwhReceiver:
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until :meth:`start` (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accept(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        try:
            payload = self.webhook.verify(body, headers)
        except WebhookVerificationError:
            self._log(headers.get("webhook-id"), "rejected", None)
            return 401, "rejected"
        msg_id = headers.get("webhook-id")
        with self._lock:
            seen = self._db.execute(
                "SELECT 1 FROM requests WHERE webhook_id = ? AND outcome = 'accepted'", (msg_id,)
            ).fetchone()
            outcome = "duplicate" if seen else "accepted"
            self._log(msg_id, outcome, json.dumps(payload))
        return 200, outcome

    def _log(self, msg_id: str | None, outcome: str, payload: str | None) -> None:
        self._db.execute(
            "INSERT INTO requests (webhook_id, outcome, payload, received_at) VALUES (?, ?, ?, ?)",
            (msg_id, outcome, payload, time.time()),
        )


class SwhLog:
    """What a receiver logged, read from its SQLite file (the receiver may be another process)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _rows(self, query: str) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.db_path)
        try:
            return db.execute(query).fetchall()
        finally:
            db.close()

    def outcomes(self) -> dict[str, int]:
        rows = self._rows("SELECT outcome, COUNT(*) FROM requests GROUP BY outcome")
        return {"accepted": 0, "duplicate": 0, "rejected": 0, **dict(rows)}

    def accepted_per_id(self) -> dict[str, int]:
        rows = self._rows(
            "SELECT webhook_id, COUNT(*) FROM requests WHERE outcome = 'accepted' GROUP BY webhook_id"
        )
        return dict(rows)

    def accepted_in_order(self) -> list[str]:
        """The accepted ``webhook-id`` values, in the order they arrived."""
        return [
            w
            for (w,) in self._rows("SELECT webhook_id FROM requests WHERE outcome = 'accepted' ORDER BY seq")
        ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret-env", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver = SwhReceiver(os.environ[args.secret_env], Path(args.db), args.port).start()
    print(receiver.url, flush=True)
    stop.wait()
    receiver.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
