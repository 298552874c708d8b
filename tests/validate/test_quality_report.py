from __future__ import annotations

import re
from pathlib import Path

from loopml.examples import write_example
from loopml.project import Project
from loopml.validate.quality import quality_report_key


def _section(page: str, title: str) -> str:
    start = page.index(f"<h2>{title}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start : end if end > 0 else len(page)]


def test_each_new_snapshot_gets_a_small_self_contained_quality_report(tmp_path: Path) -> None:
    write_example("retail", tmp_path / "retail", months=1)
    project = Project.open(tmp_path / "retail")
    result = project.ingest()
    assert result.report == quality_report_key(project.name, result.dataset.version)
    page = project.store.artifacts.get_bytes(result.report).decode()
    # static SVG: opens offline, runs no script, loads nothing
    assert "<script" not in page and "<link " not in page and "<svg" in page
    assert len(page.encode()) < 1_000_000
    for section in ("Volume over time", "Missingness", "Quarantine reasons", "Distributions"):
        assert f"<h2>{section}</h2>" in page
    quarantine = _section(page, "Quarantine reasons")
    for rule, count in result.quarantine_counts.items():  # the quarantine chart holds the real counts
        assert f"<title>{rule}: {count:,}</title>" in quarantine, rule
    # the missingness chart and table hold the real counts of missing values, over the whole snapshot
    frame = project.data.snapshot().frame
    missing = _section(page, "Missingness")
    nulls = {c: int(n) for c, n in frame.isna().sum().items() if n}
    assert nulls, "the retail example has missing values"
    for column, count in nulls.items():
        assert f"<title>{column}: {count:,}</title>" in missing, column
        assert re.search(f'<td>{re.escape(column)}</td><td class="num">{count:,}</td>', missing), column
    # ids and times are summarised in the columns table, never drawn as a histogram
    distributions = _section(page, "Distributions")
    contract = project.data.contract()
    for column in (contract.id_column, contract.event_time):
        if column:
            assert f"{column} (number)" not in distributions and f"{column} (category)" not in distributions
    again = project.ingest()
    assert again.new_version is False and again.report is None
