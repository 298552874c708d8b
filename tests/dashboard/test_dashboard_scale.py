"""The dashboard over many logged predictions, in a real browser.

A million predictions (written straight to the store, so that the test stays quick; fewer with
``LOOPML_TEST_DASHBOARD_ROWS`` when trying a change) over two versions and 60 daily windows, half
of them labelled. Each page must render in under a second on the server, transfer under 1.5 MB on a
first load and under 200 kB on a reload with the browser's cache; every chart's points must lie
inside its axes (read from the figure Plotly drew); the admin buttons must move the alias through
the authenticated API with a pasted token the page never holds, and be refused a tampered artifact.
Screenshots of each page are left in ``test-artifacts/dashboard-scale/`` (and the test's tmp_path).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import yaml
from dashboard_support import AXIS_CHECK, artifacts_dir, chromium, load, needs_chromium, running
from sqlalchemy import insert

from loopml.dashboard import dashboard_router
from loopml.enums import Origin
from loopml.examples import write_example
from loopml.project import Project
from loopml.store import insert_serialized, tables

ROWS = int(os.environ.get("LOOPML_TEST_DASHBOARD_ROWS", "1000000"))  # the million
DAYS = 60
CHUNK = 50_000
TOKEN = "dashboard-admin-2f9Qx7LmR4tVb8Kp1ZcW6yH3nJ"
FIRST_LOAD_BYTES = 1_500_000
RELOAD_BYTES = 200_000


_V1_LAST = next(o for o in range(0, ROWS, CHUNK) if o >= ROWS * 0.7) - 1  # version 2 made the rest


def _write_log(project: Project) -> None:
    """A million predictions of versions 1 then 2 over DAYS days, made from the replay's real
    inputs (so any of them can be explained), scores from a beta distribution; half labelled."""
    replay = pd.read_parquet(project.directory / "data" / "replay.parquet")
    columns = list(project.models.get(1).signature["input_columns"])
    base = [{k: v for k, v in r.items() if k in columns} for r in replay.to_dict("records")]
    rng = np.random.default_rng(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    engine = project.store.engine
    for offset in range(0, ROWS, CHUNK):
        ids, inputs = [], []
        for i in range(offset, offset + CHUNK):
            row = dict(base[i % len(base)])
            when = start + timedelta(seconds=i * DAYS * 86_400 / ROWS)
            row["tx_datetime"] = when.strftime("%Y-%m-%d %H:%M:%S")
            ids.append(f"{i:032x}")
            inputs.append(orjson.dumps(row, default=str).decode())
        scores = rng.beta(0.3, 6.0, CHUNK).round(6).tolist()
        version = 1 if offset < ROWS * 0.7 else 2
        made = start + timedelta(seconds=(offset + CHUNK) * DAYS * 86_400 / ROWS)  # after its events
        with engine.begin() as conn:
            insert_serialized(
                conn,
                model_name=project.name,
                model_version=version,
                created_at=made,
                origin=Origin.BATCH,
                ids=ids,
                inputs=inputs,
                scores=scores,
                outputs=['{"label": 0}'] * CHUNK,
            )
            if offset < ROWS // 2:
                labels = (rng.random(CHUNK) < np.asarray(scores)).astype(int).tolist()
                conn.execute(
                    insert(tables.feedback),
                    [
                        {"prediction_id": p, "label": y, "received_at": made}
                        for p, y in zip(ids, labels, strict=True)
                    ],
                )


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dash-scale")
    write_example("fraud", root, days=40, regime_change_day=30)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(params={"n_estimators": 20}, bootstrap=20, report=False)
    config["monitor"] = {"window": "1d", "min_rows": 100, "min_labels": 30}
    # the admin API on (its token closes every route group by default): the dashboard stays open
    config.setdefault("serve", {}).update(admin_token=TOKEN, public_routes=["dashboard"])
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    project = Project.open(root)
    project.ingest()
    project.train()
    project.train()  # version 2, not promoted
    started = time.perf_counter()
    _write_log(project)
    written = time.perf_counter() - started
    started = time.perf_counter()
    project.monitor.refresh_aggregates()  # what the page starts in the background once the log is large
    aggregated = time.perf_counter() - started
    return {"project": project, "written_s": written, "aggregated_s": aggregated}


PAGES = {
    "overview": ("/", ["chart-volume", "chart-performance", "chart-drift"]),
    "models": ("/models", ["chart-roc", "chart-pr", "chart-features"]),
    # the newest prediction of the served version: explained by the model the server holds (a
    # prediction of another version loads that version again, its window state replayed from the log)
    "explain": (f"/explain?prediction={_V1_LAST:032x}", ["chart-explanation"]),
}


@needs_chromium
def test_pages_are_light_and_quick_over_many_predictions(big: dict[str, Any], tmp_path: Path) -> None:
    project: Project = big["project"]
    data = project.monitor.dashboard()
    assert sum(w["predictions"] for w in data.performance) == ROWS and len(data.performance) == DAYS
    shots = artifacts_dir("dashboard-scale", tmp_path)
    measured: dict[str, Any] = {
        "rows": ROWS,
        "written_s": big["written_s"],
        "aggregated_s": big["aggregated_s"],
    }
    app = project.app([dashboard_router(project)])
    with running(app) as url, chromium() as browser:
        for name, (path, charts) in PAGES.items():
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            first = load(page, url + path, wait_for=f"#{charts[0]} .main-svg")
            again = load(page, url + path, wait_for=f"#{charts[0]} .main-svg")
            axes = {chart: page.evaluate(AXIS_CHECK, chart) for chart in charts}
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            shutil.copy(shots / f"{name}.png", tmp_path / "screenshots" / f"{name}.png")
            context.close()
            measured[name] = {
                "server_ms": first.server_ms,
                "first_load_bytes": first.transferred,
                "reload_server_ms": again.server_ms,
                "reload_bytes": again.transferred,
            }
            assert first.status == 200 and first.errors == [] and again.errors == [], (name, first.errors)
            assert first.server_ms < 1000 and again.server_ms < 1000, (name, measured[name])
            assert first.transferred < FIRST_LOAD_BYTES, (name, first.requests)
            assert again.transferred < RELOAD_BYTES, (name, again.requests)
            for chart, found in axes.items():
                assert found["bad"] == [], (name, chart, found["bad"][:5])
            if name == "overview":
                x_axis = next(a for a in axes["chart-performance"]["axes"] if a["name"] == "xaxis")
                y_axis = next(a for a in axes["chart-performance"]["axes"] if a["name"] == "yaxis")
                assert x_axis["type"] == "date" and y_axis["range"] == [0, 1]
    (shots / "measured.json").write_text(json.dumps(measured, indent=2))
    print(json.dumps(measured, indent=2))


@needs_chromium
def test_admin_buttons_move_the_alias_with_a_pasted_token(big: dict[str, Any]) -> None:
    project: Project = big["project"]
    app = project.app([dashboard_router(project)])
    with running(app) as url, chromium() as browser:
        page = browser.new_page()
        load(page, url + "/models?a=1&b=2", wait_for="#chart-roc .main-svg")
        assert TOKEN not in page.content()
        page.fill("#admin-token", TOKEN)
        page.click("#admin-keep")
        assert page.evaluate("sessionStorage.getItem('loopml.admin_token')") == TOKEN
        assert page.input_value("#admin-token") == ""  # kept in the tab's session, not in the page
        page.fill("#admin-reason", "better on the newest week")
        with page.expect_navigation(wait_until="networkidle"):  # the page reloads once the alias moved
            page.click("button.admin-move[data-version='2']")
            page.wait_for_selector("#admin-result.ok")
        assert project.models.alias("champion") == 2
        history = page.inner_text("#alias-history")
        assert "better on the newest week" in history and "dashboard" in history
        page.click("#admin-forget")
        page.fill("#admin-reason", "no token")
        page.click("button.admin-move[data-version='1']")
        assert "Paste the admin token" in page.inner_text("#admin-result")
        page.evaluate("sessionStorage.setItem('loopml.admin_token', 'wrong-token-wrong-token-wrong')")
        page.click("button.admin-move[data-version='1']")
        page.wait_for_selector("#admin-result.bad")
        assert "401" in page.inner_text("#admin-result")
        # a tampered artifact is refused as `loopml models promote` refuses it; the alias stays
        artifact = Path(project.settings.artifacts_url) / project.models.get(1).artifact_key
        original = artifact.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0xFF
        artifact.write_bytes(bytes(flipped))
        try:
            page.evaluate(f"sessionStorage.setItem('loopml.admin_token', '{TOKEN}')")
            page.evaluate("document.getElementById('admin-result').className = ''")
            page.click("button.admin-move[data-version='1']")
            page.wait_for_selector("#admin-result.bad")
            refused = page.inner_text("#admin-result")
        finally:
            artifact.write_bytes(original)
        assert "409" in refused and "version 1" in refused, refused
        assert "stays version 2" in refused, refused
    assert project.models.alias("champion") == 2
