"""User-provided strings are text on every page, never markup (issue 20).

A project whose column name, category and model name carry ``<script>`` (and an alias move whose
reason does): the training report, the data report and the three dashboard pages must hold them
escaped, never raw, and a real browser opening the pages must run none of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from dashboard_support import chromium, needs_chromium, running
from fastapi.testclient import TestClient

from loopml.dashboard import dashboard_router
from loopml.project import Project
from loopml.validate.quality import quality_report_key

COLUMN = "<script>alert('column')</script>"
CATEGORY = '<script>alert("category")</script>'
MODEL = "<script>alert('model')</script>"
REASON = "<img src=x onerror=alert('reason')>"
RAW = ("<script>alert", "<img src=x")
PATHS = ("/", "/models", "/explain")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(3)
    n = 1200
    kind = rng.choice([CATEGORY, "plain", "other"], n)
    amount = rng.gamma(2.0, 30.0, n)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            COLUMN: amount,
            "kind": kind,
            "flag": ((amount > 80) ^ (rng.random(n) < 0.1) | (kind == CATEGORY)).astype(int),
        }
    )
    frame.iloc[: n - 200].to_csv(root / "data.csv", index=False)
    frame.iloc[n - 200 :].drop(columns="flag").to_csv(root / "new.csv", index=False)
    config = {
        "name": "hostile",
        "task": "binary",
        "source": {"kind": "csv", "path": "data.csv"},
        "target": "flag",
        "id_column": "id",
        "train": {"bootstrap": 10, "report": True, "params": {"n_estimators": 10}},
        "monitor": {"min_rows": 50, "min_labels": 5},
    }
    (root / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    project = Project.open(root, environ={})
    project.ingest()
    project.train()
    project.train()
    project.models.promote(2, reason=REASON, actor=MODEL)
    project.predictions.predict_file(root / "new.csv", root / "scored.csv")
    project.monitor.run()
    return project


def _no_raw(text: str, where: str) -> None:
    for raw in RAW:
        assert raw not in text, (where, text[max(0, text.index(raw) - 200) : text.index(raw) + 100])


def test_reports_hold_user_strings_as_text(hostile: Project) -> None:
    artifacts = Path(hostile.settings.artifacts_url)
    training = (artifacts / hostile.models.get(2).metrics["report"]).read_text(encoding="utf-8")
    key = quality_report_key(hostile.name, hostile.data.versions()[0].version)
    data = hostile.store.artifacts.get_bytes(key).decode()
    for name, page in (("training report", training), ("data report", data)):
        _no_raw(page, name)
        assert "&lt;script&gt;alert(&#39;column&#39;)&lt;/script&gt;" in page, name
    assert "&lt;script&gt;alert(&#34;category&#34;)&lt;/script&gt;" in data  # the category's own bar


def test_served_pages_hold_user_strings_as_text(hostile: Project) -> None:
    renamed = Project(hostile.settings.model_copy(update={"name": MODEL}), hostile.store)
    with TestClient(hostile.app([dashboard_router(hostile)])) as client:
        pages = {path: client.get(path).text for path in PATHS}
    with TestClient(renamed.app([dashboard_router(renamed)])) as client:
        named = {path: client.get(path).text for path in PATHS}
    for path, page in [*pages.items(), *((f"{p} (renamed)", t) for p, t in named.items())]:
        _no_raw(page, path)
    assert "&lt;img src=x onerror=alert(&#39;reason&#39;)&gt;" in pages["/models"]  # the alias history
    assert "\\u003cscript\\u003ealert(&#39;column&#39;)" not in pages["/"]  # JSON data, not HTML entities
    # the drift chart's row: JSON with <, >, & and ' escaped (Jinja's tojson), read back as the name
    assert "\\u003cscript\\u003ealert(\\u0027column\\u0027)\\u003c/script\\u003e" in pages["/"]
    assert "<title>loopml: &lt;script&gt;alert(&#39;model&#39;)&lt;/script&gt;</title>" in named["/"]


@needs_chromium
def test_no_user_string_runs_in_the_browser(hostile: Project) -> None:
    dialogs: list[str] = []
    with running(hostile.app([dashboard_router(hostile)])) as url, chromium() as browser:
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for path in PATHS:
            page.goto(url + path, wait_until="networkidle")
        page.goto(url + "/")
        shown = page.evaluate("document.getElementById('chart-drift')._fullData[0].y")
    assert dialogs == []
    assert COLUMN in shown  # drawn as the column's name, as text
