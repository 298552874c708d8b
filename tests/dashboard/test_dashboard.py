from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from loopml.dashboard import dashboard_data, render_dashboard
from loopml.examples import write_example
from loopml.project import Project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("dash")
    write_example("fraud", root, days=40, regime_change_day=30)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(params={"n_estimators": 20}, bootstrap=0, report=False)
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


def test_dashboard_page_is_self_contained(project: Project) -> None:
    page = render_dashboard(project)
    assert "<script src=" not in page and "Plotly" in page
    assert "chart-volume" in page and "chart-performance" in page and "chart-drift" in page


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_dashboard_renders_real_data_without_console_errors(project: Project, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    page_file = tmp_path / "dashboard.html"
    page_file.write_text(render_dashboard(project), encoding="utf-8")
    expected = [w["predictions"] for w in dashboard_data(project)["performance"]]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            page.wait_for_selector("#chart-performance .main-svg")
            shown = page.evaluate("Array.from(document.getElementById('chart-volume')._fullData[0].y)")
            heat_rows = page.evaluate("document.getElementById('chart-drift')._fullData[0].y.length")
        finally:
            browser.close()
    assert errors == []
    assert shown == expected
    assert heat_rows >= 2


def test_api_serves_the_dashboard_and_takes_feedback(project: Project) -> None:
    from fastapi.testclient import TestClient

    from loopml.dashboard import dashboard_router

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

    from loopml.dashboard import dashboard_router

    newest = project.predictions.explain()  # the newest logged prediction, scored again
    explanation = newest.explanation
    total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
    assert abs(total - explanation.raw_score) <= 1e-6
    assert newest.score is not None
    assert explanation.raw_score == pytest.approx(math.log(newest.score / (1 - newest.score)), abs=1e-6)
    page = render_dashboard(project)
    assert "<h2>Why this prediction</h2>" in page and 'id="chart-explanation"' in page
    assert '"type":"waterfall"' in page and newest.prediction_id in page
    older = project.predictions.logged()["prediction_id"].iloc[0]
    with TestClient(project.app([dashboard_router(project)])) as client:
        chosen = client.get("/", params={"prediction": older})
        unknown = client.get("/", params={"prediction": "no-such-prediction"})
    assert chosen.status_code == 200 and older in chosen.text and 'id="chart-explanation"' in chosen.text
    assert unknown.status_code == 200 and 'id="chart-explanation"' not in unknown.text
    assert "prediction &#x27;no-such-prediction&#x27; is not in the prediction log" in unknown.text
