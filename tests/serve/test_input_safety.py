"""Input that cannot poison the loop, over real HTTP (TestClient, and a real uvicorn server where the
socket matters).

A small machine-failure project (tests/contract_support.py) whose event time ``when`` is no model
input: event times far in the future or the past are a 4xx naming the field on REST and v2 and a
quarantined row in batch, and monitoring does not move; the event time a request carries is logged
(monitoring windows by it); labels are checked against the model (binary: 0/1 or true/false) and a
bad one stores nothing; one JSON reader with a depth limit serves every route; a body that does not
arrive is a 408 and its connection is closed; a client holds a bounded number of connections;
client-facing errors carry no server path; a version that does not exist is a 404 on every route.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from contract_support import TEMPERATURE, WEAR, machine_rows
from loopml.cli import app as cli
from loopml.errors import InputError, StoreError
from loopml.project import Project
from loopml.serve import BackgroundServer
from loopml.store import tables

PREDICT = "/v1/models/machines/predict"
INFER = "/v2/models/machines/infer"
GOOD: dict[str, Any] = {
    "UDI": 90_001,
    "Product ID": "L90001",
    "Type": "L",
    TEMPERATURE: 300.5,
    WEAR: 120,
    "maintained": False,
}
DATATYPES = {
    "UDI": "INT64",
    "Product ID": "BYTES",
    "Type": "BYTES",
    TEMPERATURE: "FP64",
    WEAR: "INT64",
    "maintained": "BOOL",
    "when": "BYTES",
}
WHEN = "2024-03-01T10:00:00"  # inside the training data (2024-01-01 to early March)


def _config(serve: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "machines",
        "task": "binary",
        "target": "failure",
        "id_column": "UDI",
        "event_time": "when",  # no model input: no datetime_parts, no windows
        "source": {"kind": "parquet", "path": "data/machines.parquet"},
        "contract": {"columns": {"Product ID": {"pattern": "^[LMH][0-9]{5}$"}}},
        "train": {"params": {"n_estimators": 20, "n_jobs": 1}, "report": False},
        "monitor": {"min_rows": 1, "min_labels": 1},
        **({"serve": serve} if serve else {}),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("safety") / "proj"
    (root / "data").mkdir(parents=True)
    machine_rows(1_500).to_parquet(root / "data" / "machines.parquet", index=False)
    (root / "loopml.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False), encoding="utf-8")
    project = Project.open(root, environ={})
    project.ingest()
    project.train()
    assert "when" not in project.models.load().input_columns
    project.store.engine.dispose()
    return root


def copy_of(trained: Path, target: Path, serve: dict[str, Any] | None = None) -> Project:
    shutil.copytree(trained, target)
    if serve:
        (target / "loopml.yaml").write_text(yaml.safe_dump(_config(serve), sort_keys=False), encoding="utf-8")
    return Project.open(target, environ={})


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Project:
    return copy_of(trained, tmp_path / "proj")


def tensors(record: dict[str, Any]) -> dict[str, Any]:
    inputs = [{"name": k, "datatype": DATATYPES[k], "shape": [1], "data": [v]} for k, v in record.items()]
    return {"inputs": inputs}


def count(project: Project, table: Any) -> int:
    with project.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- event times --------------------------------------------------------------------------------------


def _future(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(tzinfo=None).isoformat(timespec="seconds")


IMPLAUSIBLE = [
    pytest.param("9999-12-31T23:59:59", "outside the years", id="year-9999"),
    pytest.param("2200-01-01T00:00:00", "ahead of the server clock", id="far-future"),
    pytest.param("now+2d", "more than 1d ahead of the server clock", id="two-days-ahead"),  # at run time
    pytest.param("0001-01-01T00:00:00", "outside the years", id="year-1"),
    pytest.param("1990-01-01T00:00:00", "first training event, 2024-01-01T00:00:00", id="far-past"),
    pytest.param("2023-12-20T00:00:00", "before 2023-12-31T00:00:00", id="before-training-less-window"),
]


def test_the_event_time_a_request_carries_is_logged_and_monitoring_windows_by_it(project: Project) -> None:
    with TestClient(project.app()) as client:
        response = client.post(PREDICT, json=[{**GOOD, "when": WHEN}, {**GOOD, "UDI": 90_002}])
        assert response.status_code == 200, response.text
        sent = client.post(INFER, json=tensors({**GOOD, "UDI": 90_003, "when": "2024-03-02T11:00:00"}))
        assert sent.status_code == 200, sent.text
    logged = project.predictions.logged().set_index(
        project.predictions.logged()["inputs"].map(lambda i: i["UDI"])
    )
    assert logged.loc[90_001, "inputs"]["when"] == WHEN and logged.loc[90_001, "time"] == pd.Timestamp(WHEN)
    assert logged.loc[90_003, "time"] == pd.Timestamp("2024-03-02T11:00:00")
    assert "when" not in logged.loc[90_002, "inputs"]  # not sent: monitored at its arrival time
    assert logged.loc[90_002, "time"] > pd.Timestamp("2026-01-01")


@pytest.mark.parametrize(("when", "said"), IMPLAUSIBLE)
def test_implausible_event_times_are_4xx_naming_the_field_and_monitoring_is_unchanged(
    project: Project, when: str, said: str
) -> None:
    when = _future(2) if when == "now+2d" else when  # collected ids and values stay fixed (xdist)
    with TestClient(project.app()) as client:
        assert client.post(PREDICT, json={**GOOD, "when": WHEN}).status_code == 200
    before, logged = project.monitor.run(record=False).to_dict(), count(project, tables.predictions)
    with TestClient(project.app()) as client:
        single = client.post(PREDICT, json={**GOOD, "when": when})
        assert single.status_code == 422, single.text
        message = single.json()["error"]["message"]
        assert message.startswith("field 'when': ") and said in message, message
        listed = client.post(PREDICT, json=[{**GOOD, "when": WHEN}, {**GOOD, "when": when}])
        assert listed.status_code == 422 and "field '[1].when'" in listed.json()["error"]["message"]
        v2 = client.post(INFER, json=tensors({**GOOD, "when": when}))
        assert v2.status_code == 400 and "inputs.when.data[0]" in v2.json()["error"], v2.text
        assert said in v2.json()["error"]
    after = project.monitor.run(record=False).to_dict()
    assert count(project, tables.predictions) == logged  # nothing refused was logged
    assert _json(after["window"], after["history"]) == _json(before["window"], before["history"])


def _json(*values: Any) -> str:
    return json.dumps(values, default=str, sort_keys=True)


def test_batch_quarantines_implausible_event_times(project: Project, tmp_path: Path) -> None:
    rows = machine_rows(6, seed=9, first_id=80_000).drop(columns="failure")
    rows["when"] = rows["when"].astype(str)
    rows.loc[1, "when"] = "2200-01-01 00:00:00"
    rows.loc[3, "when"] = "1990-06-01 00:00:00"
    rows.loc[4, "when"] = _future(3).replace("T", " ")
    source = tmp_path / "in.csv"
    rows.to_csv(source, index=False)
    result = project.predictions.predict_file(source, tmp_path / "out" / "scored.parquet")
    assert (result.rows, result.quarantined, result.quarantine_counts) == (3, 3, {"range": 3})
    quarantined = pd.read_parquet(result.quarantine or "")
    assert quarantined["_row"].tolist() == [1, 3, 4] and set(quarantined["_column"]) == {"when"}
    times = project.predictions.logged()["time"]
    assert times.max() < pd.Timestamp("2024-04-01") and times.min() >= pd.Timestamp("2024-01-01")


# --- labels -------------------------------------------------------------------------------------------

BAD_LABELS = [{"a": 1}, "yes", 5, -1, None, [1], "NaN", 1e308, 2, 0.5, "1", "true", math.inf]


def test_bad_labels_are_4xx_naming_the_prediction_and_nothing_is_stored(project: Project) -> None:
    with TestClient(project.app()) as client:
        ids = [
            p["prediction_id"] for p in client.post(PREDICT, json=[GOOD, GOOD, GOOD]).json()["predictions"]
        ]
        for label in BAD_LABELS:
            if isinstance(label, float) and not math.isfinite(label):
                body: Any = f'[{{"prediction_id": "{ids[0]}", "label": Infinity}}]'
                response = client.post(
                    "/v1/feedback", content=body, headers={"content-type": "application/json"}
                )
                assert response.status_code == 422, response.text  # not JSON at all
                continue
            response = client.post("/v1/feedback", json=[{"prediction_id": ids[0], "label": label}])
            assert response.status_code == 422, (label, response.text)
            error = response.json()["error"]
            assert (
                f"prediction_id '{ids[0]}'" in error["message"] and "nothing was stored" in error["message"]
            )
            assert "0, 1, true or false" in error["message"], error["message"]
            assert error["details"][0]["prediction_id"] == ids[0]
        # One bad label among good ones: still nothing stored, and each bad one is listed.
        mixed = [
            {"prediction_id": ids[0], "label": 1},
            {"prediction_id": ids[1], "label": "yes"},
            {"prediction_id": ids[2], "label": [1]},
        ]
        response = client.post("/v1/feedback", json=mixed)
        assert response.status_code == 422
        assert [d["item"] for d in response.json()["error"]["details"]] == [1, 2]
        assert count(project, tables.feedback) == 0
        good = [{"prediction_id": ids[0], "label": True}, {"prediction_id": ids[1], "label": 0}]
        assert client.post("/v1/feedback", json=good).json()["accepted"] == 2
    with project.store.engine.connect() as conn:
        stored = sorted(conn.execute(select(tables.feedback.c.label)).scalars())
    assert stored == [0, 1]  # true is stored as 1


def test_bad_labels_through_python_and_the_cli(project: Project, tmp_path: Path) -> None:
    with TestClient(project.app()) as client:
        prediction_id = client.post(PREDICT, json=GOOD).json()["predictions"][0]["prediction_id"]
    for label in BAD_LABELS:
        with pytest.raises(InputError, match=f"prediction_id '{prediction_id}'"):
            project.predictions.feedback([{"prediction_id": prediction_id, "label": label}])
    file = tmp_path / "labels.csv"
    pd.DataFrame({"prediction_id": [prediction_id], "label": ["yes"]}).to_csv(file, index=False)
    result = CliRunner().invoke(cli, ["feedback", "--input", str(file), "--project", str(project.directory)])
    assert result.exit_code == 4, result.output
    assert prediction_id in result.output and "Traceback" not in result.output
    assert count(project, tables.feedback) == 0
    pd.DataFrame({"prediction_id": [prediction_id], "label": [1]}).to_csv(file, index=False)
    assert project.predictions.feedback_file(file).accepted == 1


# --- one JSON reader, with limits ------------------------------------------------------------------------

DEEP = [
    pytest.param(b"[" * 2_000, id="2000-brackets"),
    pytest.param(b"[" * 900 + b"NaN" + b"]" * 900, id="900-deep-with-nan"),
    pytest.param(b'{"a":' * 100 + b"1" + b"}" * 100, id="100-objects"),
]


@pytest.mark.parametrize("body", DEEP)
def test_deep_nesting_is_4xx_on_every_route(trained: Path, tmp_path: Path, body: bytes) -> None:
    admin = "deep-nesting-admin-token-" + "x7Qp2mZr9LkW"  # the admin routes are mounted too
    project = copy_of(trained, tmp_path / "proj", serve={"admin_token": admin})
    headers = {"content-type": "application/json", "authorization": f"Bearer {admin}"}
    with TestClient(project.app()) as client:
        app = client.app
        routes = {(p, m) for p, item in app.openapi()["paths"].items() for m in item}  # type: ignore[attr-defined]
        posted = sorted(p for p, m in routes if m == "post")
        assert {
            PREDICT.replace("machines", "{name}"),
            "/v1/feedback",
            "/v2/models/{name}/infer",
            "/v1/models/{name}/aliases/{alias}",
        } <= set(posted), posted
        for path in posted:
            url = path.format(name="machines", version="1", alias="champion")
            response = client.post(url, content=body, headers=headers)
            if path.endswith("/rul"):  # no maintenance project: 404 (test_maintenance_endpoint has one)
                assert response.status_code == 404, response.text
                continue
            assert response.status_code in (400, 422), (url, response.status_code, response.text)
            deep = "nests deeper than 64 levels" in response.text  # the body was read: refused for its depth
            assert deep or (b"NaN" in body and "not valid JSON" in response.text), (url, response.text)


# --- slow bodies and connections (a real uvicorn server) --------------------------------------------------


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):  # b"" once the server has closed the connection
        data += chunk
    return data


def test_a_slow_body_gets_408_within_the_limit_and_the_connection_is_closed(
    trained: Path, tmp_path: Path
) -> None:
    project = copy_of(trained, tmp_path / "proj", serve={"body_timeout": 1.5})
    with BackgroundServer(project.app()) as server:
        sock = _raw(server.url)
        head = (
            "POST /v1/models/machines/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            "content-length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"UDI": 1, "Type": ')  # 19 bytes of 1000
        started = time.monotonic()
        answer = _read_all(sock)  # returns only because the server closes the connection
        waited = time.monotonic() - started
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request_timeout" in answer and b"serve.body_timeout" in answer
        assert 1.4 <= waited < 4.5, waited
        # The server is fine afterwards.
        assert TestClient(project.app()).get("/health/live").status_code == 200


def test_connections_per_client_are_bounded_and_a_silent_one_is_closed(trained: Path, tmp_path: Path) -> None:
    project = copy_of(trained, tmp_path / "proj", serve={"max_connections_per_client": 3, "body_timeout": 2})
    with BackgroundServer(project.app()) as server:
        held = [_raw(server.url) for _ in range(3)]
        time.sleep(0.2)
        extra = _raw(server.url)
        refused = _read_all(extra)
        assert refused.startswith(b"HTTP/1.1 429 ") and b"too_many_connections" in refused, refused
        held.pop().close()
        time.sleep(0.2)
        again = _raw(server.url)
        again.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        assert again.recv(65536).startswith(b"HTTP/1.1 200 ")
        # A connection that sends no request is answered 408 and closed after serve.body_timeout.
        started = time.monotonic()
        silent = _read_all(held[0])
        assert silent.startswith(b"HTTP/1.1 408 ") and time.monotonic() - started < 4.0, silent
        for sock in (*held, again, extra):
            sock.close()


# --- errors: no server paths; unknown versions are 404 ------------------------------------------------------


def test_client_facing_errors_carry_no_server_path(project: Project) -> None:
    app = project.app()
    where = str(project.directory / "artifacts" / "models" / "machines" / "1" / "model.skops")

    @app.get("/v1/broken")
    def broken() -> None:
        raise StoreError(f"model 'machines' version 1: cannot read {where} or s3://bucket/key.")

    from loopml.serve.auth import PREDICT_ROUTES  # a route must be classified to be reached at all

    with TestClient(app) as client, pytest.MonkeyPatch.context() as patch:
        patch.setattr("loopml.serve.auth.PREDICT_ROUTES", PREDICT_ROUTES | {"/v1/broken"})
        response = client.get("/v1/broken")
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert message == "model 'machines' version 1: cannot read <server path> or <server location>."
    assert str(project.directory) not in response.text


@pytest.mark.parametrize("version", ["999", "abc", "0", "1.0", "99999999999"])
def test_a_version_that_does_not_exist_is_404_on_every_route(project: Project, version: str) -> None:
    with TestClient(project.app()) as client:
        assert client.get("/v2/models/machines/versions/1/ready").status_code == 200
        for method, url, body in [
            ("GET", f"/v2/models/machines/versions/{version}", None),
            ("GET", f"/v2/models/machines/versions/{version}/ready", None),
            ("POST", f"/v2/models/machines/versions/{version}/infer", tensors(GOOD)),
        ]:
            response = client.request(method, url, json=body)
            assert response.status_code == 404, (url, response.text)
            assert "machines" in response.json()["error"]
