"""``/metrics``: Prometheus text format, per-app registry, route templates as labels."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from loopml.project import Project

RECORD: dict[str, Any] = {
    "customer_id": 5_999_999,
    "terminal_id": 5_999_999,
    "tx_datetime": "2026-01-20T14:30:00",
    "tx_amount": 42.5,
}


def samples(client: TestClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lbl, v in found.get(name, []) if all(lbl.get(k) == x for k, x in labels.items()))


def test_metrics_count_time_and_label_by_route_template(api_project: Project) -> None:
    with TestClient(api_project.app()) as client:
        for _ in range(3):
            assert client.post("/v1/models/fraud/predict", json=RECORD).status_code == 200
        assert client.post("/v1/models/fraud/predict", json=[RECORD, RECORD]).status_code == 200
        assert client.post("/v1/models/fraud/predict", json={"tx_amount": -1}).status_code == 422
        for i in range(5):  # raw paths that match no route must not create series of their own
            assert client.get(f"/no/such/path/{i}").status_code == 404
        assert client.request("BREW", "/health/live").status_code == 405
        found = samples(client)
    predict = "/v1/models/{name}/predict"
    assert value(found, "loopml_http_requests_total", route=predict, method="POST", status="2xx") == 4
    assert value(found, "loopml_http_requests_total", route=predict, method="POST", status="4xx") == 1
    assert value(found, "loopml_http_errors_total", route=predict, code="invalid_input") == 1
    assert value(found, "loopml_http_requests_total", route="<unmatched>", status="4xx") == 5
    assert value(found, "loopml_http_requests_total", method="other") == 1
    routes = {lbl["route"] for lbl, _ in found["loopml_http_requests_total"]}
    assert not any("/no/such" in r for r in routes), routes
    assert value(found, "loopml_http_request_duration_seconds_count", route=predict) == 5
    assert value(found, "loopml_http_request_duration_seconds_sum", route=predict) > 0
    assert value(found, "loopml_predictions_total", model="fraud") == 5
    assert value(found, "loopml_prediction_score_count", model="fraud") == 5
    assert value(found, "loopml_prediction_score_bucket", model="fraud", le="1.0") == 5
    assert found["loopml_model_info"] == [({"model": "fraud", "version": "1", "alias": "champion"}, 1.0)]


def test_each_app_has_its_own_registry(api_project: Project) -> None:
    with TestClient(api_project.app()) as first:
        assert first.post("/v1/models/fraud/predict", json=RECORD).status_code == 200
        with TestClient(api_project.app()) as second:
            found = samples(second)
    assert value(found, "loopml_predictions_total") == 0
    assert value(found, "loopml_http_requests_total", route="/v1/models/{name}/predict") == 0


# --- a scrape after traffic on two versions ---------------------------------------------------------------


def _rows(project: Project, count: int, skip: int = 0) -> list[dict[str, Any]]:
    """Transactions of the last simulated day, as a client sends them."""
    frame = pd.read_parquet(project.settings.project_dir / "data" / "transactions.parquet")
    day = frame[frame["tx_datetime"].dt.normalize() == frame["tx_datetime"].max().normalize()]
    rows = day.iloc[skip : skip + count].drop(columns=["tx_fraud_scenario"], errors="ignore")
    rows = rows.assign(tx_datetime=rows["tx_datetime"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows.to_dict("records")
    ]


def _predict(client: TestClient, rows: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    labels = []
    version = 0
    for start in range(0, len(rows), 100):
        batch = rows[start : start + 100]
        response = client.post("/v1/models/fraud/predict", json=[{**r, "tx_fraud": None} for r in batch])
        assert response.status_code == 200, response.text
        version = response.json()["model_version"]
        for row, answer in zip(batch, response.json()["predictions"], strict=True):
            labels.append({"prediction_id": answer["prediction_id"], "label": int(row["tx_fraud"])})
    return version, labels


def test_a_scrape_after_two_versions_finds_per_version_counts_and_the_gauges(
    two_version_dir: Path, copy_project: Callable[[Path], Project]
) -> None:
    project = copy_project(two_version_dir)
    with TestClient(project.app()) as client:
        first, labels = _predict(client, _rows(project, 300))
        assert first == 1
        assert client.post("/v1/models/fraud/predict", json={"tx_amount": -1}).status_code == 422
        project.models.promote(2, reason="test: second version mid-traffic")
        deadline, polls = time.monotonic() + 10, []  # the server follows the alias within a second
        while not polls or polls[-1] != 2:
            assert time.monotonic() < deadline, "the server did not follow the alias"
            polls.append(client.post("/v1/models/fraud/predict", json=RECORD).json()["model_version"])
            time.sleep(0.1)
        second, more = _predict(client, _rows(project, 300, skip=300))
        assert second == 2
        assert client.post("/v1/models/fraud/predict", json={"tx_amount": -1}).status_code == 422
        assert client.post("/v1/feedback", json=labels + more).json()["accepted"] == 600
        project.monitor.run()  # the pass /metrics reads its gauges from
        found = samples(client)
    predict = "/v1/models/{name}/predict"
    # per version: the 300 records of each (and the polls it answered), 3 batches and one 422 each
    on_1, on_2 = polls.count(1), polls.count(2)
    assert value(found, "loopml_predictions_total", model="fraud", version="1") == 300 + on_1
    assert value(found, "loopml_predictions_total", model="fraud", version="2") == 300 + on_2
    assert value(found, "loopml_prediction_score_count", model="fraud", version="2") == 300 + on_2
    assert value(found, "loopml_http_requests_total", route=predict, version="1", status="2xx") == 3 + on_1
    assert value(found, "loopml_http_requests_total", route=predict, version="2", status="2xx") == 3 + on_2
    assert value(found, "loopml_http_requests_total", route=predict, version="1", status="4xx") == 1
    assert value(found, "loopml_http_requests_total", route=predict, version="2", status="4xx") == 1
    assert value(found, "loopml_http_errors_total", code="invalid_input", version="2") == 1
    assert found["loopml_model_info"] == [({"model": "fraud", "version": "2", "alias": "champion"}, 1.0)]
    # score buckets with resolution under 0.01, where a fraud model puts most of its scores
    low = value(found, "loopml_prediction_score_bucket", version="1", le="0.01")
    assert 0.5 * (300 + on_1) < low <= 300 + on_1
    # requests in flight: the scrape itself
    assert value(found, "loopml_http_requests_in_flight") == 1
    # the gauges of the monitoring pass, for the version it judged
    assert value(found, "loopml_store_up") == 1
    drift = {lbl["feature"] for lbl, _ in found["loopml_drift_psi"] if lbl["version"] == "2"}
    assert {"tx_amount", "prediction"} <= drift
    assert found["loopml_drift_detected"] and found["loopml_drift_p_value"]
    assert value(found, "loopml_performance_estimated", version="2", metric="average_precision") > 0
    assert found["loopml_performance_realized"]
    assert value(found, "loopml_label_coverage", version="2") > 0
    assert value(found, "loopml_predictions_waiting_for_labels", version="2") >= 1  # the polls
    assert value(found, "loopml_monitor_last_pass_timestamp_seconds") > time.time() - 600
    # the outbox: high scores opened cases that no worker delivered yet
    assert value(found, "loopml_outbox_pending") > 0
    assert value(found, "loopml_outbox_oldest_pending_age_seconds") > 0
    assert "loopml_outbox_dead" in found
    # the standard collectors
    assert value(found, "process_resident_memory_bytes") > 0 and value(found, "process_open_fds") > 0
    assert value(found, "process_cpu_seconds_total") > 0
    assert "python_gc_objects_collected_total" in found and "python_info" in found


def test_multiprocess_mode_sums_the_workers(api_project: Project, tmp_path: Path) -> None:
    """Two server processes sharing PROMETHEUS_MULTIPROC_DIR (as the workers of one server do): a
    scrape of either answers the counts of both."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with api_project.start_server(env=env) as first, api_project.start_server(env=env) as second:
        for url, times in ((first.url, 3), (second.url, 2)):
            for _ in range(times):
                assert httpx.post(f"{url}/v1/models/fraud/predict", json=RECORD).status_code == 200
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(httpx.get(f"{second.url}/metrics").text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    assert value(found, "loopml_predictions_total", model="fraud", version="1") == 5
    assert value(found, "loopml_http_requests_total", route="/v1/models/{name}/predict", status="2xx") == 5
    assert value(found, "loopml_http_requests_in_flight") == 1  # the scrape, on the live workers
    assert value(found, "loopml_store_up") == 1 and "loopml_outbox_pending" in found
    assert "process_resident_memory_bytes" not in found  # per process: not summed across workers
