"""HTTPS with the address pinned: the connection goes to the checked IP, while the TLS server name
(SNI) and the certificate check still use the URL's host name."""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from loopml.actions import Delivery, DeliveryError
from loopml.actions.webhook import WebhookAction


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]]

    def log_message(self, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.seen.append({"host": self.headers["host"]})
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()


def _server(cert: Path, key: Path, seen: list[dict[str, str]], names: list[str]) -> HTTPServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,misc,return-value]
    server = HTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"seen": seen}))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[int, Path, list[dict[str, str]], list[str]]]:
    cert, key = _certificate(tmp_path, "localhost")
    seen: list[dict[str, str]] = []
    names: list[str] = []
    server = _server(cert, key, seen, names)
    yield server.server_address[1], cert, seen, names
    server.shutdown()
    server.server_close()


def _delivery() -> Delivery:
    return Delivery("msg_tls", "hook", "rule", {"x": 1}, datetime.now(UTC))


def _action(url: str, ca_file: Path, secret: str) -> WebhookAction:
    options = {"url": url, "secret": secret, "allowed_hosts": ["localhost"], "allow_loopback": True}
    return WebhookAction("hook", {**options, "ca_file": str(ca_file)})


def test_https_to_the_pinned_address_keeps_sni_and_host(tls, secret: str) -> None:
    port, cert, seen, names = tls
    action = _action(f"https://localhost:{port}/hook", cert, secret)
    action.send(_delivery())
    action.close()
    assert names == ["localhost"]  # the TLS server name is the host name, not 127.0.0.1
    assert seen == [{"host": f"localhost:{port}"}]


def test_certificate_is_checked_against_the_host_name(tls, secret: str, tmp_path: Path) -> None:
    port, _, seen, _ = tls
    other, _ = _certificate(tmp_path, "cases.example.com")  # trusted, but for another name
    action = _action(f"https://localhost:{port}/hook", other, secret)
    with pytest.raises(DeliveryError, match="certificate"):
        action.send(_delivery())
    assert seen == []
