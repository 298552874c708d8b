from __future__ import annotations

from pathlib import Path

from loopml.examples import write_example
from loopml.project import Project
from loopml.validate.quality import quality_report_key


def test_each_new_snapshot_gets_a_self_contained_quality_report(tmp_path: Path) -> None:
    write_example("retail", tmp_path / "retail", months=1)
    project = Project.open(tmp_path / "retail")
    result = project.ingest()
    assert result.report == quality_report_key(project.name, result.dataset.version)
    page = project.store.artifacts.get_bytes(result.report).decode()
    assert "<script src=" not in page and "Plotly" in page
    for section in ("Volume over time", "Missingness", "Quarantine reasons", "Distributions"):
        assert section in page
    for rule in result.quarantine_counts:  # the quarantine chart holds the real counts
        assert f'"{rule}"' in page
    again = project.ingest()
    assert again.new_version is False and again.report is None
