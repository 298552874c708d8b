"""The prediction API, through FastAPI's TestClient (the lifespan runs: the prediction log is real).

A small fraud project is trained once per module; tests that move aliases or damage artifacts work on
their own copy of it.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select

from loopml.project import Project
from loopml.registry import get_alias, get_version, move_alias, set_alias
from loopml.serve import OPTIONAL_ROUTES, PROTECTED_ROUTES, PUBLIC_ROUTES, create_app
from loopml.serve.deps import get_holder
from loopml.serve.state import ModelHolder
from loopml.store import tables

PREDICT = "/v1/models/fraud/predict"
WHEN = "2026-01-20T14:30:00"
# The card and terminal ids are inputs (entities of window features). Records made here use ids the
# simulated data never has, each its own, so that the events the server remembers from one request
# cannot change the features of another and every comparison below stays exact.
_entities = itertools.count(9_000_000)
RECORD: dict[str, Any] = {
    "transaction_id": 8_999_999,
    "customer_id": 8_999_999,
    "terminal_id": 8_999_999,
    "tx_datetime": WHEN,
    "tx_amount": 42.5,
}


@pytest.fixture
def app(api_project: Project) -> FastAPI:
    return api_project.app()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # raise_server_exceptions (the default) turns any unhandled error, i.e. a 500, into a test failure.
    with TestClient(app) as test_client:
        yield test_client


def record(amount: Any = 42.5, when: Any = WHEN, **extra: Any) -> dict[str, Any]:
    """A valid request record (unless told otherwise) for a card and a terminal of its own."""
    entity = next(_entities)
    return {"customer_id": entity, "terminal_id": entity, "tx_datetime": when, "tx_amount": amount, **extra}


def without(rec: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k != key}


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the status and the error code of an error response; return its ``error`` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def score_alone(client: TestClient, rec: dict[str, Any]) -> float:
    response = client.post(PREDICT, json=rec)
    assert response.status_code == 200, response.text
    score: float = response.json()["predictions"][0]["score"]
    return score


# --- predictions ----------------------------------------------------------------------------------------


def test_predict_one_record(client: TestClient, api_project: Project) -> None:
    response = client.post(PREDICT, json=RECORD)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"model", "model_version", "predictions"}
    assert body["model"] == "fraud"
    assert body["model_version"] == 1
    [prediction] = body["predictions"]
    assert set(prediction) == {"prediction_id", "transaction_id", "score", "label"}
    assert prediction["transaction_id"] == RECORD["transaction_id"]  # the id it was given, echoed
    assert uuid.UUID(prediction["prediction_id"]).version == 4
    assert 0.0 <= prediction["score"] <= 1.0
    assert prediction["label"] == int(prediction["score"] >= 0.5)
    # The API scores with the registered model itself: exactly the score LoadedModel gives.
    assert prediction["score"] == float(api_project.models.load().predict_records([RECORD])[0])


def test_predict_list_keeps_order_and_matches_single_requests(client: TestClient) -> None:
    records = [
        record(amount, f"2026-01-2{i}T0{i}:15:00", transaction_id=8_100_000 + i)
        for i, amount in enumerate([3.5, 47.0, 180.0, 260.0, 900.0, 12.25])
    ]
    response = client.post(PREDICT, json=records)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "fraud" and body["model_version"] == 1
    predictions = body["predictions"]
    assert len(predictions) == len(records)
    ids = [p["prediction_id"] for p in predictions]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)
    for p in predictions:
        assert 0.0 <= p["score"] <= 1.0 and p["label"] in (0, 1)
    scores = [p["score"] for p in predictions]
    assert len(set(scores)) > 1, "the records differ, so should their scores"
    assert scores == [score_alone(client, r) for r in records]


def test_contract_columns_that_are_not_inputs_are_not_used(client: TestClient) -> None:
    # The target and simulator bookkeeping are not inputs: sending them must not change the score.
    leaky = {**RECORD, "tx_fraud": 1, "tx_fraud_scenario": 2, "tx_time_seconds": 1, "tx_time_days": 0}
    assert score_alone(client, leaky) == score_alone(client, RECORD)


def test_a_field_that_is_no_column_of_the_contract_is_refused(client: TestClient) -> None:
    error = error_of(client.post(PREDICT, json={**RECORD, "evil": "x"}), 422, "invalid_input")
    assert (
        error["message"].startswith("field 'evil': 'x' ")
        and "(contract rule: extra_field)" in error["message"]
    )


def test_mixed_datetime_formats_in_one_batch_score_as_when_sent_alone(client: TestClient) -> None:
    """Timestamps with and without fractions or UTC offsets, in one list, are each read correctly."""
    records = [
        record(300.0, "2026-01-20T01:00:00"),
        record(300.0, "2026-01-20T01:00:00.5"),
        record(300.0, "2026-01-20T01:00:00+02:00"),
        record(300.0, "2026-01-20T01:00:00Z"),
        record(300.0, "2026-01-20T13:00:00.250-05:00"),
    ]
    response = client.post(PREDICT, json=records)
    assert response.status_code == 200, response.text
    scores = [p["score"] for p in response.json()["predictions"]]
    assert scores == [score_alone(client, r) for r in records]


# --- invalid requests -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field", "rule"),
    [
        pytest.param(record("abc"), "tx_amount", "type", id="wrong-type"),
        pytest.param(record("42"), "tx_amount", "type", id="number-as-text"),
        pytest.param(record(True), "tx_amount", "type", id="number-as-bool"),
        pytest.param(without(record(), "tx_amount"), "tx_amount", "required", id="missing-amount"),
        pytest.param(without(record(), "tx_datetime"), "tx_datetime", "required", id="missing-datetime"),
        pytest.param(without(record(), "customer_id"), "customer_id", "required", id="missing-card"),
        pytest.param(record(customer_id=-3), "customer_id", "range", id="negative-card-id"),
        pytest.param(record(customer_id=3.5), "customer_id", "type", id="fractional-card-id"),
        pytest.param(record(None), "tx_amount", "not_null", id="null-amount"),
        pytest.param(record("NaN"), "tx_amount", "type", id="nan-string"),
        pytest.param(record("Infinity"), "tx_amount", "type", id="infinity-string"),
        pytest.param(record("-inf"), "tx_amount", "type", id="minus-infinity-string"),
        pytest.param(record(-0.01), "tx_amount", "range", id="negative-amount"),
        pytest.param(record(5.0, "yesterday"), "tx_datetime", "type", id="bad-datetime"),
        pytest.param(record(5.0, 1_700_000_000), "tx_datetime", "type", id="epoch-datetime"),
        pytest.param(record(transaction_id="abc"), "transaction_id", "type", id="id-as-text"),
        pytest.param(record(transaction_id="../../etc/passwd"), "transaction_id", "type", id="id-as-path"),
        pytest.param(record(evil="x"), "evil", "extra_field", id="unknown-field"),
        pytest.param([RECORD, record(-1.0)], "[1].tx_amount", "range", id="bad-record-in-list"),
        pytest.param([RECORD, "x"], "[1]", "type", id="non-object-in-list"),
    ],
)
def test_invalid_record_is_422_naming_the_field(
    client: TestClient, payload: Any, field: str, rule: str
) -> None:
    error = error_of(client.post(PREDICT, json=payload), 422, "invalid_input")
    assert error["message"].startswith(f"field '{field}': ")
    assert f"(contract rule: {rule})" in error["message"]
    first = error["details"][0]
    assert (first["field"], first["rule"]) == (field, rule)


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [
        pytest.param('{"tx_amount": NaN}', "tx_amount", "NaN", id="NaN"),
        pytest.param('{"tx_amount": Infinity}', "tx_amount", "Infinity", id="Infinity"),
        pytest.param('{"tx_amount": -Infinity}', "tx_amount", "-Infinity", id="-Infinity"),
        pytest.param('{"tx_amount": 1e999}', "tx_amount", "Infinity", id="1e999"),
        pytest.param('[{"tx_amount": 1.0}, {"tx_amount": NaN}]', "[1].tx_amount", "NaN", id="list"),
    ],
)
def test_non_finite_json_numbers_are_422_naming_the_field(
    client: TestClient, raw: str, field: str, value: str
) -> None:
    # NaN and Infinity are not JSON, and 1e999 does not fit a double; read anyway, each is refused in
    # the field that holds it.
    rest = orjson.dumps(without(record(), "tx_amount")).decode()[1:-1]
    body = raw.replace('"tx_amount"', f'{rest}, "tx_amount"')
    response = client.post(PREDICT, content=body, headers={"content-type": "application/json"})
    error = error_of(response, 422, "invalid_input")
    assert error["message"].startswith(
        f"field '{field}': {value} is not a finite number (contract rule: type)"
    )
    assert error["details"][0]["value"] == value


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"[]", id="empty-list"),
        pytest.param(b'"x"', id="string"),
        pytest.param(b"5", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"true", id="bool"),
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b'{"tx_amount": 1.0,', id="truncated-json"),
        pytest.param(b"", id="empty-body"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
    ],
)
def test_bad_body_is_422(client: TestClient, content: bytes) -> None:
    response = client.post(PREDICT, content=content, headers={"content-type": "application/json"})
    error_of(response, 422, "invalid_input")


def test_batch_over_max_batch_is_413(client: TestClient, api_project: Project) -> None:
    limit = api_project.settings.serve.max_batch
    at_limit = client.post(PREDICT, json=[record(float(i % 500)) for i in range(limit)])
    assert at_limit.status_code == 200, at_limit.text
    assert len(at_limit.json()["predictions"]) == limit
    error = error_of(client.post(PREDICT, json=[RECORD] * (limit + 1)), 413, "payload_too_large")
    assert str(limit) in error["message"]


def test_body_over_max_body_bytes_is_413(client: TestClient, api_project: Project) -> None:
    limit = api_project.settings.serve.max_body_bytes
    body = orjson.dumps(record(1.0))
    padded = body + b" " * (limit + 1 - len(body))
    assert len(padded) == limit + 1
    headers = {"content-type": "application/json"}
    error = error_of(client.post(PREDICT, content=padded, headers=headers), 413, "payload_too_large")
    assert str(limit) in error["message"]

    # Without a Content-Length (chunked upload) the limit is enforced while reading the stream.
    def chunks() -> Iterator[bytes]:
        yield body
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    error_of(client.post(PREDICT, content=chunks(), headers=headers), 413, "payload_too_large")
    # A body just under the limit is fine.
    fits = body + b" " * (limit - len(body))
    assert client.post(PREDICT, content=fits, headers=headers).status_code == 200


def test_unknown_model_is_404(client: TestClient) -> None:
    error = error_of(client.post("/v1/models/nope/predict", json=RECORD), 404, "not_found")
    assert "'nope'" in error["message"]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_when = st.datetimes().map(lambda d: d.isoformat()) | st.tuples(
    st.datetimes(), st.sampled_from(["", "Z", "+02:00", "-11:30", "+14:00"])
).map(lambda dt: dt[0].isoformat() + dt[1])
_record = st.fixed_dictionaries(
    {
        "tx_amount": st.floats(allow_nan=False, allow_infinity=False) | st.integers() | _json,
        "tx_datetime": _when | _json,
        "customer_id": st.integers(0, 3000) | st.integers() | _json,
        "terminal_id": st.integers(0, 3000) | st.integers() | _json,
    },
    optional={"transaction_id": st.integers() | _json},
)


@settings(
    max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=_json | _record | st.lists(_record, min_size=1, max_size=5))
def test_no_request_body_is_a_server_error(client: TestClient, payload: Any) -> None:
    response = client.post(PREDICT, json=payload)
    assert response.status_code in (200, 413, 422), response.text
    if response.status_code == 200:
        scores = [p["score"] for p in response.json()["predictions"]]
        assert all(0.0 <= s <= 1.0 for s in scores)


# --- health -----------------------------------------------------------------------------------------------


def test_health_live_and_ready(client: TestClient) -> None:
    live = client.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model": "fraud", "model_version": 1}


def test_ready_is_503_before_any_model_is_trained(
    tmp_path: Path, make_fast_project: Callable[[Path], Path]
) -> None:
    project = Project.open(make_fast_project(tmp_path / "untrained"), environ={})
    with TestClient(create_app(project.settings, project.store)) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        assert ready.json()["problem"]["code"] == "not_found"  # readiness names the problem
        error = error_of(client.post(PREDICT, json=RECORD), 404, "not_found")
        assert "train" in error["message"]


def test_server_becomes_ready_when_a_champion_appears(
    two_version_dir: Path, copy_project: Callable[[Path], Project]
) -> None:
    project = copy_project(two_version_dir)
    with project.store.engine.begin() as conn:  # versions are registered, but none is champion yet
        conn.execute(delete(tables.model_aliases))
    with TestClient(project.app()) as client:
        assert client.get("/health/ready").status_code == 503
        error_of(client.post(PREDICT, json=RECORD), 404, "not_found")
        set_alias(project.store, "fraud", "champion", 2, reason="test")
        # No restart: while nothing is loaded the holder looks at the alias on every request.
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["model_version"] == 2
        assert client.post(PREDICT, json=RECORD).json()["model_version"] == 2


def test_ready_is_503_once_shutting_down(app: FastAPI) -> None:
    with TestClient(app) as client:
        assert client.get("/health/ready").status_code == 200
    # The lifespan has ended (shutdown): readiness must fail so that load balancers stop sending traffic.
    after = TestClient(app).get("/health/ready")
    assert after.status_code == 503
    assert TestClient(app).get("/health/live").status_code == 200


# --- routes -----------------------------------------------------------------------------------------------


def route_paths(app: FastAPI) -> list[str | None]:
    """Every route path of the app, with included routers flattened (FastAPI >= 0.120 nests them)."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is not None:
        return [context.path for context in iter_contexts(app.routes)]
    return [getattr(route, "path", None) for route in app.routes]


def test_every_route_is_classified(app: FastAPI) -> None:
    paths = route_paths(app)
    assert None not in paths, "a route without a path could not be classified"
    assert {"/v1/models/{name}/predict", "/health/live", "/health/ready"} <= set(paths)
    assert not (PUBLIC_ROUTES | OPTIONAL_ROUTES) & PROTECTED_ROUTES, "a route cannot be public and protected"
    unclassified = set(paths) - (PUBLIC_ROUTES | OPTIONAL_ROUTES | PROTECTED_ROUTES)
    assert not unclassified, f"classify these routes in loopml.serve.app: {unclassified}"
    # The OpenAPI description lists no route that the app does not have.
    assert set(app.openapi()["paths"]) <= set(paths)


# --- the prediction log -------------------------------------------------------------------------------------


def test_predictions_are_logged(api_project: Project) -> None:
    records = [
        record(12.5, "2026-01-21T09:00:00", transaction_id=8_000_101),
        record(250.0, "2026-01-21T23:59:59", transaction_id=8_000_102),
        record(0.0, "2026-01-22T03:10:00", transaction_id=8_000_103),
    ]
    returned: list[dict[str, Any]] = []
    with TestClient(api_project.app()) as client:
        for payload in (records[0], records[1:]):
            response = client.post(PREDICT, json=payload)
            assert response.status_code == 200, response.text
            returned.extend(response.json()["predictions"])
        assert client.post(PREDICT, json=record(-5.0)).status_code == 422  # refused: never logged
    # The client's context has closed: the lifespan's shutdown drained the log writer.
    ids = [p["prediction_id"] for p in returned]
    predictions = tables.predictions
    with api_project.store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(predictions).where(predictions.c.id.in_(ids)))}
        every_api_row = conn.execute(select(predictions).where(predictions.c.origin == "api")).fetchall()
    assert set(rows) == set(ids)
    assert all(r.inputs["tx_amount"] >= 0 for r in every_api_row), "a refused request was logged"
    for sent, prediction in zip(records, returned, strict=True):
        row = rows[prediction["prediction_id"]]
        assert row.origin == "api"
        assert row.model_name == "fraud"
        assert row.model_version == 1
        assert row.inputs == sent
        assert row.score == prediction["score"]
        assert row.output == prediction
        assert row.created_at is not None


# --- following the alias; refusing a damaged artifact -------------------------------------------------


def test_server_follows_the_champion_alias(
    two_version_dir: Path, copy_project: Callable[[Path], Project]
) -> None:
    project = copy_project(two_version_dir)
    probe = record(300.0, "2026-01-20T02:00:00")
    v1 = float(project.models.load(1).predict_records([probe])[0])
    v2 = float(project.models.load(2).predict_records([probe])[0])
    assert v1 != v2, "versions 1 and 2 should differ for this test to mean anything"
    with TestClient(project.app()) as client:
        first = client.post(PREDICT, json=probe).json()
        assert (first["model_version"], first["predictions"][0]["score"]) == (1, v1)
        set_alias(project.store, "fraud", "champion", 2, reason="test")
        # The holder re-reads the alias at most every `refresh` seconds (1 s by default).
        body = _until_version(client, probe, 2)
        assert body["predictions"][0]["score"] == v2
        assert client.get("/health/ready").json()["model_version"] == 2
        # Moving the alias back is followed too.
        set_alias(project.store, "fraud", "champion", 1, reason="roll back")
        back = _until_version(client, probe, 1)
        assert back["predictions"][0]["score"] == v1


def _until_version(client: TestClient, probe: dict[str, Any], version: int) -> dict[str, Any]:
    """Predict until ``version`` answers (the new version loads beside the requests), at most 10 s."""
    deadline = time.monotonic() + 10
    body = client.post(PREDICT, json=probe).json()
    while body["model_version"] != version and time.monotonic() < deadline:
        time.sleep(0.1)
        body = client.post(PREDICT, json=probe).json()
    assert body["model_version"] == version
    return body


def force_alias(engine: Engine, version: int, alias: str = "champion") -> None:
    """Point ``alias`` at ``version`` without the checks of ``set_alias``: as another tool, an older
    loopml, or an artifact changed after its promotion leaves a store."""
    with engine.begin() as conn:
        move_alias(conn, "fraud", alias, version, reason="test: behind loopml's back")


def tamper(project: Project, version: int) -> bytes:
    """Flip one byte of a version's artifact file (its SHA-256 no longer matches); return the original."""
    key = get_version(project.store.engine, "fraud", version).artifact_key
    artifact = Path(project.settings.artifacts_url) / key
    original = artifact.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    return original


def test_tampered_new_version_is_refused_and_the_old_one_keeps_serving(
    two_version_dir: Path, copy_project: Callable[[Path], Project]
) -> None:
    project = copy_project(two_version_dir)
    engine = project.store.engine
    v1, v2 = get_version(engine, "fraud", 1), get_version(engine, "fraud", 2)
    assert v2.artifact_key != v1.artifact_key
    original = tamper(project, 2)
    v1_score = float(project.models.load(1).predict_records([RECORD])[0])
    app = project.app()
    holder = ModelHolder(project.store, "fraud", "champion", refresh=0.05)
    app.dependency_overrides[get_holder] = lambda: holder
    with TestClient(app) as client:
        assert client.post(PREDICT, json=RECORD).json()["model_version"] == 1
        force_alias(engine, 2)  # moved behind loopml's back, or the file changed after the check
        time.sleep(0.2)
        for _ in range(3):
            response = client.post(PREDICT, json=RECORD)
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["model_version"], body["predictions"][0]["score"]) == (1, v1_score)
            time.sleep(0.06)  # past the refresh interval: each request re-checks (and refuses) version 2
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["model_version"] == 1
        # Once the artifact is restored, the version the alias names is taken up.
        (Path(project.settings.artifacts_url) / v2.artifact_key).write_bytes(original)
        _until_version(client, RECORD, 2)
    assert get_alias(engine, "fraud", "champion") == 2


def test_server_starting_on_a_tampered_champion_is_not_ready(
    two_version_dir: Path, copy_project: Callable[[Path], Project]
) -> None:
    project = copy_project(two_version_dir)
    tamper(project, 2)
    force_alias(project.store.engine, 2)
    with TestClient(project.app()) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 503
        error = error_of(client.post(PREDICT, json=RECORD), 503, "artifact_integrity")
        assert "SHA-256" in error["message"]


def test_a_failing_feedback_read_never_fails_a_request(
    api_project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The holder hands feedback to the window history between requests; a database error there is
    logged and the request is served (the cursor stays, so the next check reads the labels again)."""
    from sqlalchemy.exc import OperationalError

    from loopml.scoring import LoadedModel

    holder = ModelHolder(api_project.store, "fraud", "champion", refresh=0.0)  # re-checks every call
    served = holder.get()

    def locked(self: LoadedModel, store: Any) -> int:
        raise OperationalError("SELECT feedback", {}, Exception("database is locked"))

    monkeypatch.setattr(LoadedModel, "learn_feedback", locked)
    assert holder.get() is served  # the check runs beside the request
    assert holder.settle() and "learning feedback for fraud failed" in caplog.text
