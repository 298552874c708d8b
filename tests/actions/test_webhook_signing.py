"""Standard Webhooks signing, checked by an independent implementation written here from the spec
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md), and
the example receiver's refusals: a tampered body, a stale timestamp, a wrong secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from loopml.actions import Delivery
from loopml.actions.webhook import WebhookAction, parse_retry_after
from loopml.examples.fraud.receiver import CaseReceiver, new_secret


# -- the independent implementation (the spec, section "Signature scheme") --------------------------
def spec_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(key = base64-decoded part after 'whsec_', "{id}.{timestamp}.{body}"))."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def spec_verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = spec_signature(secret, msg_id, timestamp, body)
    for part in headers["webhook-signature"].split(" "):
        version, signature = part.split(",", 1)
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


# -- a bare capturing server: records exactly what arrived -----------------------------------------
class _Capture(BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]]

    def log_message(self, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def capture() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []
    handler = type("Capture", (_Capture,), {"got": got})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def _webhook(url: str, monkeypatch: pytest.MonkeyPatch, secrets: str) -> WebhookAction:
    monkeypatch.setenv("HOOK_SECRET", secrets)
    options = {
        "url": url,
        "secret_env": "HOOK_SECRET",
        "allowed_hosts": ["localhost"],
        "allow_loopback": True,
    }
    return WebhookAction("hook", options)


def _delivery(payload: dict[str, Any]) -> Delivery:
    return Delivery("msg_0123456789abcdef", "hook", "rule", payload, datetime.now(UTC))


def test_signature_verifies_with_the_spec_implementation(capture, monkeypatch) -> None:
    url, got = capture
    secret = new_secret()
    action = _webhook(url, monkeypatch, secret)
    action.send(_delivery({"transaction_id": 7, "score": 0.93, "note": "über"}))
    action.close()
    [(headers, body)] = got
    assert headers["webhook-id"] == "msg_0123456789abcdef"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["content-type"] == "application/json"
    assert headers["host"] == url.split("/")[2]  # pinned to the checked address, Host kept
    assert json.loads(body) == {"transaction_id": 7, "score": 0.93, "note": "über"}
    assert spec_verify(secret, headers, body)
    assert not spec_verify(new_secret(), headers, body)
    assert not spec_verify(secret, headers, body + b" ")


def test_secret_rotation_sends_one_signature_per_secret(capture, monkeypatch) -> None:
    url, got = capture
    old, new = new_secret(), new_secret()
    action = _webhook(url, monkeypatch, f"{new} {old}")
    action.send(_delivery({"a": 1}))
    action.close()
    [(headers, body)] = got
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert spec_verify(old, headers, body) and spec_verify(new, headers, body)


_CLIENT = httpx.Client(timeout=10)  # one client: each new one loads the CA bundle (~0.2 s)


def _post(receiver: CaseReceiver, secret: str, body: bytes, *, msg_id: str, ts: int | None = None,
          sign_body: bytes | None = None) -> httpx.Response:  # fmt: skip
    timestamp = str(int(time.time()) if ts is None else ts)
    signature = spec_signature(secret, msg_id, timestamp, body if sign_body is None else sign_body)
    headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": f"v1,{signature}"}
    return _CLIENT.post(receiver.url, content=body, headers=headers)


def test_receiver_accepts_valid_and_rejects_tampered_stale_and_wrong_secret(receiver, secret) -> None:
    body = json.dumps({"transaction_id": 1}).encode()
    assert _post(receiver, secret, body, msg_id="msg_ok").status_code == 200
    assert _post(receiver, secret, body, msg_id="msg_ok").json()["status"] == "duplicate"
    tampered = json.dumps({"transaction_id": 2}).encode()
    assert _post(receiver, secret, tampered, msg_id="msg_t", sign_body=body).status_code == 401
    assert _post(receiver, secret, body, msg_id="msg_s", ts=int(time.time()) - 400).status_code == 401
    assert _post(receiver, secret, body, msg_id="msg_f", ts=int(time.time()) + 400).status_code == 401
    assert _post(receiver, new_secret(), body, msg_id="msg_w").status_code == 401
    assert _CLIENT.post(receiver.url, content=body).status_code == 401  # unsigned
    assert [c["webhook_id"] for c in receiver.cases()] == ["msg_ok"]
    assert receiver.outcomes() == {"accepted": 1, "duplicate": 1, "rejected": 5}


def test_receiver_accepts_either_secret_during_rotation(tmp_path) -> None:
    old, new = new_secret(), new_secret()
    with CaseReceiver(secret=[old, new], db_path=tmp_path / "c.db") as receiver:
        assert _post(receiver, old, b"{}", msg_id="msg_1").status_code == 200
        assert _post(receiver, new, b"{}", msg_id="msg_2").status_code == 200


@pytest.mark.parametrize(
    ("value", "expected"), [("7", 7.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)]
)
def test_retry_after_header_forms(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_bad_secret_is_a_one_line_config_error(monkeypatch) -> None:
    from loopml.errors import ConfigError

    for bad in ("not base64!", "whsec_" + base64.b64encode(os.urandom(4)).decode()):
        with pytest.raises(ConfigError) as info:
            _webhook("http://localhost:1/x", monkeypatch, bad)
        assert "actions.endpoints.hook" in str(info.value) and "\n" not in str(info.value)
    monkeypatch.delenv("HOOK_SECRET")
    with pytest.raises(ConfigError, match="HOOK_SECRET"):
        WebhookAction(
            "hook", {"url": "http://localhost:1/x", "secret_env": "HOOK_SECRET", "allowed_hosts": ["*"]}
        )
