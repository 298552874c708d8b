"""Small maintenance projects for tests: the example's engines, few trees, no HTML reports."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from loopml.examples import write_example
from loopml.project import Project, TrainOutcome


def fast_environ(trees: int) -> dict[str, str]:
    """``trees`` trees, no bootstrap intervals, no training report."""
    return {
        "LOOPML_TRAIN__PARAMS__N_ESTIMATORS": str(trees),
        "LOOPML_TRAIN__BOOTSTRAP": "0",
        "LOOPML_TRAIN__REPORT": "false",
    }


@contextmanager
def without_quality_report() -> Iterator[None]:
    """Ingest without the data quality report (plotly, seconds per ingest; tested elsewhere)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules["loopml.validate.ingest"], "write_quality_report", lambda *a, **k: None)
        yield


def maintenance_project(directory: Path, *, trees: int, **data: Any) -> tuple[Project, TrainOutcome]:
    """The maintenance example written with ``data`` (e.g. ``engines=12``), ingested (its failure
    model's data set too) and trained (the RUL model and the failure model beside it)."""
    write_example("maintenance", directory, **data)
    project = Project.open(directory, environ=fast_environ(trees))
    with without_quality_report():
        project.ingest()
    return project, project.train()
