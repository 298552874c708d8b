"""deploy/prometheus/alerts.yaml and deploy/grafana/loopml-dashboard.json: the rules parse as YAML and
as PromQL (promql-parser, the Rust parser of GreptimeDB), have what Prometheus and Alertmanager need,
and every metric they name is one the API really exposes: scraped from a served project after
traffic, feedback and a monitoring pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from loopml.examples import write_example
from loopml.project import Project

promql = pytest.importorskip("promql_parser")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "loopml-dashboard.json"
FROM_PROMETHEUS = {"up"}  # written by Prometheus itself for each scrape target


def _selectors(node: Any) -> set[str]:
    """Every metric name a PromQL expression selects."""
    if type(node).__name__ == "VectorSelector":
        return {node.name} if node.name else set()
    found: set[str] = set()
    for attribute in ("lhs", "rhs", "expr", "args", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        for item in child if isinstance(child, list) else [child]:
            if item is not None:
                found |= _selectors(item)
    return found


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return [e.replace("$model", "fraud") for e in exprs]


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The sample names /metrics gives after predictions, labels and a monitoring pass."""
    root = tmp_path_factory.mktemp("metrics") / "proj"
    write_example("fraud", root, days=30)
    config = yaml.safe_load((root / "loopml.yaml").read_text(encoding="utf-8"))
    config["train"].update(params={"n_estimators": 20, "n_jobs": 1}, report=False)
    (root / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    project = Project.open(root, environ={})
    project.ingest()
    project.train()
    frame = pd.read_parquet(root / "data" / "transactions.parquet").tail(300)
    rows = frame[["transaction_id", "customer_id", "terminal_id", "tx_amount"]].to_dict("records")
    times = frame["tx_datetime"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    records = [{**r, "tx_datetime": t} for r, t in zip(rows, times, strict=True)]
    with TestClient(project.app()) as client:
        answer = client.post("/v1/models/fraud/predict", json=records).json()["predictions"]
        labels = [
            {"prediction_id": a["prediction_id"], "label": int(y)}
            for a, y in zip(answer, frame["tx_fraud"], strict=True)
        ]
        client.post("/v1/feedback", json=labels)
        client.post("/v1/models/fraud/predict", json={"tx_amount": -1})
        project.monitor.run()
        text = client.get("/metrics").text
    families = list(text_string_to_metric_families(text))
    # a family without series yet (loopml_model_refused while nothing is refused) is still exposed
    return {family.name for family in families} | {s.name for family in families for s in family.samples}


def test_the_alert_rules_parse_and_say_what_alertmanager_needs() -> None:
    rules = _rules()
    assert len(rules) >= 10
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        promql.parse(rule["expr"])  # raises on a syntax error
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule["for"][-1] in "smh", rule["alert"]


def test_a_broken_expression_is_caught() -> None:
    with pytest.raises(ValueError):
        promql.parse("sum(rate(loopml_http_requests_total[5m]) > 1")
    assert _selectors(promql.parse("a + rate(b{x='1'}[5m]) / max by (m) (c offset 1d)")) == {"a", "b", "c"}


def test_the_rules_and_the_dashboard_name_only_exposed_metrics(exposed: set[str]) -> None:
    assert {"loopml_drift_psi", "loopml_outbox_pending", "process_resident_memory_bytes"} <= exposed
    for source, exprs in (("alerts.yaml", [r["expr"] for r in _rules()]), ("dashboard", _dashboard_exprs())):
        for expr in exprs:
            unknown = _selectors(promql.parse(expr)) - exposed - FROM_PROMETHEUS
            assert not unknown, f"{source}: {expr} names {unknown}, which /metrics does not expose"


def test_the_dashboard_covers_each_kind_of_metric() -> None:
    named = set().union(*(_selectors(promql.parse(e)) for e in _dashboard_exprs()))
    for metric in (
        "loopml_http_requests_total",
        "loopml_http_request_duration_seconds_bucket",
        "loopml_prediction_score_bucket",
        "loopml_drift_psi",
        "loopml_performance_estimated",
        "loopml_performance_realized",
        "loopml_outbox_oldest_pending_age_seconds",
        "loopml_http_requests_in_flight",
        "process_cpu_seconds_total",
    ):
        assert metric in named, metric
