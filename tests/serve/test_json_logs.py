"""Structured logs: ``--log-format json`` gives one JSON object per line, access log included."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from loopml._logging import configure_logging
from loopml.cli import app as cli
from loopml.config import parse_settings
from loopml.serve import BackgroundServer, create_app

PROJECT = "name: fraud\nsource: {path: data.csv}\ntarget: is_fraud\n"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Root logging to a buffer as JSON; the previous root setup is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [orjson.loads(line) for line in text.splitlines()]  # every line parses on its own


def test_records_are_one_json_object_per_line(captured: io.StringIO) -> None:
    log = logging.getLogger("loopml.test")
    log.info("scored %d rows", 3, extra={"model": "fraud"})
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("it failed")
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/health/live", "1.1", 200)
    first, second, third = _lines(captured)
    assert first["message"] == "scored 3 rows" and first["model"] == "fraud"
    assert {first["level"], first["logger"]} == {"INFO", "loopml.test"} and first["ts"].endswith("+00:00")
    assert second["exc_type"] == "ValueError" and "bad\nvalue" in second["exc"]
    assert (third["method"], third["path"], third["status"]) == ("GET", "/health/live", 200)


def test_the_api_access_log_has_the_request_fields(captured: io.StringIO, tmp_path: Path) -> None:
    settings = parse_settings(PROJECT, project_dir=tmp_path)
    with BackgroundServer(create_app(settings)) as server, httpx.Client(base_url=server.url) as client:
        live = client.get("/health/live", headers={"X-Request-ID": "req-42"})
        missing = client.post("/v1/models/other/predict", json={"x": 1})
        # a value HTTP allows (a control character is refused by the parser before the app) but
        # that is no request id: spaces and markup
        evil = client.get("/health/live", headers={"X-Request-ID": "a b <script>"})
    assert live.headers["x-request-id"] == "req-42" and missing.status_code == 404
    access = [line for line in _lines(captured) if line["logger"] == "loopml.access"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("GET", "/health/live", 200),
        ("POST", "/v1/models/other/predict", 404),
        ("GET", "/health/live", 200),
    ]
    assert access[0]["request_id"] == "req-42"
    assert access[2]["request_id"] == evil.headers["x-request-id"] != "a b <script>"  # replaced, not echoed
    assert all(isinstance(a["duration_ms"], float) and a["duration_ms"] >= 0 for a in access)


def test_a_bad_log_format_is_a_one_line_error() -> None:
    result = CliRunner().invoke(cli, ["--log-format", "xml", "predictions", "--help"])
    assert result.exit_code == 2
    assert "--log-format 'xml' is not one of json, text" in result.output
