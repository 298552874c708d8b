"""``/metrics``: Prometheus text format, per-app registry, route templates as labels."""

from __future__ import annotations

from typing import Any

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
