"""The training and data reports of the fraud example are small and carry no row of the data (issue 21):
they are mailed around, so they hold binned summaries and derived figures only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from loopml.examples import write_example
from loopml.project import Project
from loopml.validate.quality import quality_report_key

MAX_BYTES = 1_000_000


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("reports")
    write_example("fraud", root, days=40)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(params={"n_estimators": 30}, bootstrap=20, report=True)
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    project = Project.open(root, environ={})
    ingested = project.ingest()
    outcome = project.train()
    assert outcome.report is not None
    training = (Path(project.settings.artifacts_url) / outcome.report).read_text(encoding="utf-8")
    data = project.store.artifacts.get_bytes(quality_report_key(project.name, ingested.dataset.version))
    return {"project": project, "training": training, "data": data.decode()}


def _section(page: str, title: str) -> str:
    start = page.index(f"<h2>{title}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start : end if end > 0 else len(page)]


def test_reports_are_small(fraud: dict[str, Any]) -> None:
    sizes = {name: len(fraud[name].encode()) for name in ("training", "data")}
    print(f"report bytes: {sizes}")
    assert all(size < MAX_BYTES for size in sizes.values()), sizes


def test_no_raw_row_value_is_in_either_report(fraud: dict[str, Any]) -> None:
    """Event times to the second and amounts to the cent of 300 random rows appear in neither report
    (amounts of 100 and more with odd cents: such a string is no round bin edge or metric)."""
    frame = fraud["project"].data.snapshot().frame
    rows = frame.sample(300, random_state=1)
    times = [t.strftime("%Y-%m-%d %H:%M:%S") for t in rows["tx_datetime"]]
    amounts = [f"{a:.2f}" for a in rows["tx_amount"] if a >= 100 and round(a * 100) % 10]
    assert len(amounts) > 20
    for name in ("training", "data"):
        page = fraud[name]
        leaked = [v for v in [*times, *(t.replace(" ", "T") for t in times), *amounts] if v in page]
        assert leaked == [], (name, leaked[:5])


def test_ids_and_times_are_summarised_not_drawn(fraud: dict[str, Any]) -> None:
    page = fraud["data"]
    drawn = re.findall(r'aria-label="([^"]*)"', _section(page, "Distributions"))
    assert "tx_amount (number)" in drawn
    assert not any(label.startswith(("transaction_id", "tx_datetime")) for label in drawn), drawn
    columns = _section(page, "Columns")
    assert re.search(r"<td>transaction_id</td><td>[a-z]+</td><td>id</td>", columns)
    assert re.search(r"<td>tx_datetime</td><td>[a-z]+</td><td>time</td>", columns)
    missing = _section(page, "Missingness")  # no value is missing: said, with the counts per column
    assert "No value is missing" in missing and "<td>tx_amount</td>" in missing


def test_calibration_is_a_square_plot_over_the_scores_range(fraud: dict[str, Any]) -> None:
    section = _section(fraud["training"], "Calibration")
    size = re.search(r'<svg [^>]*width="(\d+)" height="(\d+)"', section)
    assert size is not None and size.group(1) == size.group(2)
    calibration = fraud["project"].models.get(1).metrics["calibration"]
    top = max(max(b["predicted"], b["observed"]) for b in calibration)
    ticks = [float(t.replace(",", "")) for t in re.findall(r'text-anchor="end">([0-9.,]+)</text>', section)]
    assert ticks and top <= max(ticks) <= max(2 * top, 0.05)  # the axes fit the points, not 0 to 1
    # every marker lies inside the plot area
    points = np.array(
        [[float(x), float(y)] for x, y in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', section)]
    )
    assert len(points) == len(calibration)
    assert (points[:, 0] >= 56 - 1e-6).all() and (points[:, 1] <= 380 - 48 + 1e-6).all()
