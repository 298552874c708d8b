from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from dashboard_support import AXIS_CHECK, artifacts_dir, chromium, load, needs_chromium, running
from sklearn.metrics import average_precision_score, roc_auc_score

from loopml.dashboard import dashboard_data, dashboard_router, render_dashboard
from loopml.examples import write_example
from loopml.project import Project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("dash")
    write_example("fraud", root, days=40, regime_change_day=30)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(params={"n_estimators": 20}, bootstrap=20, report=False)
    config["monitor"] = {
        "window": "1d",
        "min_rows": 100,
        "min_labels": 5,
        "performance_floor": {"average_precision": 0.99},
    }
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    proj = Project.open(root)
    proj.ingest()
    proj.train()
    proj.train()  # a second version to compare
    replay = pd.read_parquet(root / "data" / "replay.parquet")
    days = replay["tx_datetime"].dt.normalize()
    for day in sorted(days.unique())[:3]:
        rows = replay[days == day]
        rows.to_parquet(root / "day.parquet", index=False)
        proj.predictions.predict_file(root / "day.parquet", root / "scored.parquet")
        scored = pd.read_parquet(root / "scored.parquet").merge(rows[["transaction_id", "tx_fraud"]])
        pd.DataFrame({"prediction_id": scored["prediction_id"], "label": scored["tx_fraud"]}).to_csv(
            root / "labels.csv", index=False
        )
        proj.predictions.feedback_file(root / "labels.csv")
        proj.monitor.run()
    return proj


def test_dashboard_data_holds_windows_alerts_and_history(project: Project) -> None:
    data = dashboard_data(project)
    assert [w["predictions"] > 0 for w in data["performance"]] == [True, True, True]
    assert all(w["label_coverage"] == 1.0 for w in data["performance"])
    assert data["alerts"] and data["history"][0]["to"] == 1
    assert {d["column"] for d in data["drift"]} >= {"tx_amount", "prediction"}
    assert data["served_by"] == [
        {"window_start": w["window_start"], "version": 1} for w in data["performance"]
    ]


def test_window_figures_match_the_log(project: Project) -> None:
    """The SQL aggregates give each window's counts exactly, precision and recall at the threshold
    exactly, and ROC AUC and average precision exactly those of the binned scores (0.00001 wide below
    0.01, 0.001 above), close to those of the exact scores."""
    data = dashboard_data(project)
    log = project.predictions.logged()
    log["window"] = log["time"].dt.floor("D")
    threshold = project.models.get(1).signature["threshold"]
    assert [w["window_start"] for w in data["performance"]] == [
        str(d.isoformat()) for d in sorted(log["window"].unique())
    ]
    for window, (_, rows) in zip(data["performance"], log.groupby("window"), strict=True):
        y, score = rows["label"].astype(float).to_numpy(), rows["score"].to_numpy()
        assert window["predictions"] == len(rows) and window["labels"] == int(rows["label"].notna().sum())
        assert window["positives"] == int(y.sum())
        realized = window["realized"]
        flagged = score >= threshold
        if flagged.any():
            assert realized["precision"] == pytest.approx(y[flagged].mean(), abs=1e-12)
        assert realized["recall"] == pytest.approx(y[flagged].sum() / y.sum(), abs=1e-12)
        binned = np.where(score < 0.01, np.floor(score * 100_000) / 100_000, np.floor(score * 1000) / 1000)
        assert realized["roc_auc"] == pytest.approx(roc_auc_score(y, binned), abs=1e-9)
        assert realized["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=0.005)
        assert realized["average_precision"] == pytest.approx(average_precision_score(y, binned), abs=1e-9)
        assert realized["average_precision"] == pytest.approx(average_precision_score(y, score), abs=0.01)
        assert window["estimated"]["positive_rate"] == pytest.approx(score.mean(), rel=1e-9)


def test_standalone_page_inlines_its_scripts(project: Project) -> None:
    """``loopml monitor --html`` writes one file that opens offline (plotly.js and the script inline)."""
    page = render_dashboard(project)
    assert "<script src=" not in page and "Plotly" in page
    assert "chart-volume" in page and "chart-performance" in page and "chart-drift" in page


def test_served_pages_link_cached_assets(project: Project) -> None:
    from fastapi.testclient import TestClient

    with TestClient(project.app([dashboard_router(project)])) as client:
        page = client.get("/", headers={"Accept-Encoding": "gzip"})
        assert page.status_code == 200 and page.headers["content-encoding"] == "gzip"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text  # figures are JSON data; only the static script runs
        plotly = next(p for p in page.text.split('"') if p.startswith("/static/plotly-"))
        asset = client.get(plotly, headers={"Accept-Encoding": "gzip"})
        assert asset.status_code == 200 and asset.headers["content-encoding"] == "gzip"
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert int(asset.headers["content-length"]) < 1_500_000
        again = client.get(plotly, headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert client.get("/static/plotly-0.0.0.min.js").status_code == 404
        for path in ("/models", "/explain", "/models?a=1&b=2", "/?alerts_page=2"):
            assert client.get(path).status_code == 200, path
        assert client.get("/models?a=banana").status_code == 422


@needs_chromium
def test_pages_draw_real_data_in_the_browser(project: Project, tmp_path: Path) -> None:
    expected = [w["predictions"] for w in dashboard_data(project)["performance"]]
    shots = artifacts_dir("dashboard", tmp_path)
    with running(project.app([dashboard_router(project)])) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        found = load(page, url + "/", wait_for="#chart-performance .main-svg")
        shown = page.evaluate("Array.from(document.getElementById('chart-volume')._fullData[0].y)")
        heat_rows = page.evaluate("document.getElementById('chart-drift')._fullData[0].y.length")
        axes = [page.evaluate(AXIS_CHECK, c) for c in ("chart-volume", "chart-performance")]
        page.screenshot(path=str(shots / "overview.png"), full_page=True)
        models = load(page, url + "/models", wait_for="#chart-roc .main-svg")
        roc = page.evaluate(AXIS_CHECK, "chart-roc")
        page.screenshot(path=str(shots / "models.png"), full_page=True)
    assert found.errors == [] and models.errors == []
    assert shown == expected and heat_rows >= 2
    assert all(a["bad"] == [] for a in [*axes, roc])
    assert {a["name"] for a in roc["axes"]} >= {"xaxis", "yaxis"}


def test_api_serves_the_dashboard_and_takes_feedback(project: Project) -> None:
    from fastapi.testclient import TestClient

    app = project.app([dashboard_router(project)])
    replay = pd.read_parquet(project.settings.project_dir / "data" / "replay.parquet").head(3)
    records = [
        {k: (str(v) if k == "tx_datetime" else v) for k, v in r.items()}
        for r in replay[["transaction_id", "tx_datetime", "tx_amount", "customer_id", "terminal_id"]].to_dict(
            "records"
        )
    ]
    with TestClient(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and "chart-volume" in page.text
        predicted = client.post(f"/v1/models/{project.name}/predict", json=records).json()["predictions"]
        labels = [{"prediction_id": p["prediction_id"], "label": 0} for p in predicted]
        answer = client.post("/v1/feedback", json=[*labels, {"prediction_id": "unknown", "label": 1}])
        assert answer.status_code == 200
        assert answer.json() == {"received": 4, "accepted": 3, "unknown_ids": 1}
        assert client.post("/v1/feedback", json={"prediction_id": "x"}).status_code == 422
        assert client.post("/v1/feedback", json=[{"label": 1}]).status_code == 422


def test_dashboard_explains_a_logged_prediction_as_a_waterfall(project: Project) -> None:
    import math

    from fastapi.testclient import TestClient

    newest = project.predictions.explain()  # the newest logged prediction, scored again
    explanation = newest.explanation
    total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
    assert abs(total - explanation.raw_score) <= 1e-6
    assert newest.score is not None
    assert explanation.raw_score == pytest.approx(math.log(newest.score / (1 - newest.score)), abs=1e-6)
    older = project.predictions.logged()["prediction_id"].iloc[0]
    with TestClient(project.app([dashboard_router(project)])) as client:
        page = client.get("/explain").text
        chosen = client.get("/", params={"prediction": older})  # the old address still works
        unknown = client.get("/explain", params={"prediction": "no-such-prediction"})
    assert "<h2>Why this prediction</h2>" in page and 'id="chart-explanation"' in page
    assert '"type": "waterfall"' in page and newest.prediction_id in page
    assert chosen.status_code == 200 and str(chosen.url).endswith(f"/explain?prediction={older}")
    assert older in chosen.text and 'id="chart-explanation"' in chosen.text
    assert unknown.status_code == 200 and 'id="chart-explanation"' not in unknown.text
    assert "prediction &#39;no-such-prediction&#39; is not in the prediction log" in unknown.text


def test_model_page_compares_two_versions_side_by_side(project: Project) -> None:
    import json
    import re

    from fastapi.testclient import TestClient

    compared = project.models.compare(1, 2)
    for side, version in ((compared.a, 1), (compared.b, 2)):
        metrics = project.models.get(version).metrics
        assert side.version == version and side.holdout == metrics["holdout"]
        assert side.holdout_ci == metrics["holdout_ci"] and side.dataset_version == metrics["dataset_version"]
        assert set(side.curves) == {"roc", "pr"} and len(side.curves["roc"]["fpr"]) <= 101
        assert side.top_features and side.gate is None  # trained by hand, not by a retraining cycle
    with TestClient(project.app([dashboard_router(project)])) as client:
        page = client.get("/models", params={"a": 1, "b": 2}).text
    table = page[page.index('<table id="compare">') : page.index("</table>", page.index('id="compare"'))]
    for side in (compared.a, compared.b):
        value, (low, high) = side.holdout["average_precision"], side.holdout_ci["average_precision"]
        assert f'{value:.4f} <span class="muted">[{low:.4f}, {high:.4f}]</span>' in table
    assert table.count("not judged by a retraining cycle") == 2
    specs = {
        m.group(1): json.loads(m.group(2))
        for m in re.finditer(r'data-target="([^"]+)">(.*?)</script>', page, re.S)
    }
    roc = specs["chart-roc"]
    assert [t["name"] for t in roc["data"]] == ["version 1", "version 2", "chance"]
    assert roc["data"][1]["x"] == compared.b.curves["roc"]["fpr"]
    assert [t["name"] for t in specs["chart-features"]["data"]] == ["version 1", "version 2"]
    assert 'data-version="2"' in page and "Alias history" in page


def test_versions_per_window_table_is_paginated(project: Project) -> None:
    from loopml.dashboard.page import PER_PAGE, Pager

    perf = dashboard_data(project)["performance"]
    page = render_dashboard(project)
    table = page[page.index('<table id="windows">') : page.index("</table>", page.index('id="windows"'))]
    assert table.count("<tr>") == 1 + min(len(perf), PER_PAGE)
    newest = perf[-1]
    assert f"version 1: {newest['predictions']:,}" in table
    rows = [[i] for i in range(45)]
    pages = [Pager.of(rows, {"windows_page": p}, "windows_page") for p in ("1", "3", "9", "x")]
    assert [len(p.rows) for p in pages] == [20, 5, 5, 20] and pages[1].pages == 3
    assert pages[1].link(2) == "?windows_page=2"


def test_drift_colours_follow_the_absolute_levels() -> None:
    """A calm week stays green whatever its largest value; colours are the monitor's fixed ones."""
    from loopml.dashboard.figures import drift_heatmap
    from loopml.monitor import LEVEL_COLOURS

    def row(day: str, column: str, psi: float, level: str) -> dict[str, object]:
        return {"window_start": day, "column": column, "kind": "numeric", "psi": psi, "js": None,
                "p_value": 0.5, "drifted": level == "alert", "level": level}  # fmt: skip

    calm = [row(f"2026-01-0{d}", c, 0.01 * d, "ok") for d in range(1, 4) for c in ("a", "b")]
    stormy = [*calm[:-1], row("2026-01-03", "b", 0.4, "alert"), row("2026-01-04", "b", 0.12, "warn")]
    thresholds = {"psi": 0.25, "js": 0.1, "psi_warn": 0.1}
    for rows in (calm, stormy):
        trace = drift_heatmap(rows, thresholds, dict(LEVEL_COLOURS), 86_400_000)["data"][0]  # type: ignore[index]
        assert (trace["zmin"], trace["zmax"]) == (0, 2)
        assert {c for _, c in trace["colorscale"]} == set(LEVEL_COLOURS.values())
        levels = {(r["column"], r["window_start"]): r["level"] for r in rows}
        for i, column in enumerate(trace["y"]):
            for j, day in enumerate(trace["x"]):
                expected = levels.get((column, day))
                found = trace["z"][i][j]
                assert found == (None if expected is None else ("ok", "warn", "alert").index(expected))
    assert (
        max(
            v
            for line in drift_heatmap(calm, thresholds, dict(LEVEL_COLOURS), 86_400_000)["data"][0]["z"]
            for v in line
        )
        == 0
    )  # type: ignore[index]


def test_a_large_log_is_aggregated_in_the_background(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond SYNC_ROWS the page shows the last aggregates at once and a background thread computes
    new ones (this test runs last: it logs more predictions)."""
    import time

    import loopml.project.dashboard as aggregated

    monkeypatch.setattr(aggregated, "SYNC_ROWS", 0)
    monkeypatch.setattr(aggregated, "MIN_AGE_S", 0.0)
    before = sum(w["predictions"] for w in project.monitor.dashboard().performance)
    root = project.settings.project_dir
    replay = pd.read_parquet(root / "data" / "replay.parquet")
    replay.tail(50).to_parquet(root / "more.parquet", index=False)
    project.predictions.predict_file(root / "more.parquet", root / "more-scored.parquet")
    added = len(pd.read_parquet(root / "more-scored.parquet"))
    assert added > 0
    stale = project.monitor.dashboard()  # at once, with the aggregates computed before
    assert sum(w["predictions"] for w in stale.performance) == before
    deadline = time.monotonic() + 120
    while sum(w["predictions"] for w in project.monitor.dashboard().performance) != before + added:
        assert time.monotonic() < deadline, "the background refresh did not finish"
        time.sleep(0.2)
