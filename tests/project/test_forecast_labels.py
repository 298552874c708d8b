"""``project.predictions.label_forecasts``: the demand of each complete week becomes the label of the
logged forecasts of that week, once, and only for complete weeks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from forecast_support import demand_lines, project_file
from loopml.errors import InputError
from loopml.project import Project

START = pd.Timestamp("2021-01-04")  # a Monday: the first day of demand_lines


def _project(directory: Path, lines: pd.DataFrame) -> Project:
    config = yaml.safe_load(project_file({"groups": ["UK"]}))
    config["source"] = {"kind": "parquet", "path": "data/lines", "watermark": "time"}
    (directory / "data" / "lines").mkdir(parents=True)
    lines[lines["time"] < START + pd.Timedelta(weeks=22)].to_parquet(directory / "data/lines/w00.parquet")
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    project = Project.open(directory, environ={})
    project.ingest()
    project.train()
    return project


def _arrive(project: Project, lines: pd.DataFrame, weeks: tuple[int, int]) -> None:
    begin, end = (START + pd.Timedelta(weeks=w) for w in weeks)
    part = lines[(lines["time"] >= begin) & (lines["time"] < end)]
    part.to_parquet(project.directory / "data" / "lines" / f"w{weeks[0]:02d}.parquet")
    project.ingest()


def _weekly_demand(lines: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    group = np.where(lines["country"] == "UK", "UK", "rest")
    week = lines["time"].dt.to_period("W-SUN").dt.start_time.dt.date.astype(str)
    sums = lines.assign(group=group, week=week).groupby(["item", "group", "week"])["qty"].sum()
    return {key: float(value) for key, value in sums.items()}


def test_complete_weeks_label_their_forecasts_once(tmp_path: Path) -> None:
    lines = demand_lines()
    project = _project(tmp_path / "proj", lines)
    project.predictions.predict_file(None, tmp_path / "forecasts.parquet")  # logged: 4 series x 3 weeks
    logged = project.predictions.logged(event_time=False)
    assert len(logged) == 12

    nothing = project.predictions.label_forecasts()  # no week after the origin is in the data yet
    assert (nothing.waiting, nothing.sent, nothing.feedback.accepted) == (12, 0, 0)
    assert nothing.complete_to == START + pd.Timedelta(weeks=21)

    _arrive(project, lines, (22, 24))
    first = project.predictions.label_forecasts()
    assert first.complete_to == START + pd.Timedelta(weeks=23)
    assert (first.waiting, first.sent, first.feedback.accepted) == (12, 8, 8)
    assert first.to_dict()["complete_to"] == str((START + pd.Timedelta(weeks=23)).date())

    _arrive(project, lines, (24, 26))
    second = project.predictions.label_forecasts()
    assert (second.waiting, second.sent, second.feedback.accepted) == (4, 4, 4)

    labelled = project.predictions.logged(event_time=False)
    demand = _weekly_demand(lines)
    for label, inputs in zip(labelled["label"], labelled["inputs"], strict=True):
        assert label == demand[(inputs["item"], inputs["group"], inputs["period"][:10])]
    again = project.predictions.label_forecasts()
    assert (again.waiting, again.sent) == (0, 0)


def test_a_project_that_does_not_forecast_is_refused(tmp_path: Path) -> None:
    config = {"name": "churn", "task": "binary", "target": "y", "source": {"kind": "csv", "path": "x.csv"}}
    (tmp_path / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(InputError, match="not a forecast project"):
        Project.open(tmp_path, environ={}).predictions.label_forecasts()
