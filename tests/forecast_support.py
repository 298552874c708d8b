"""A small demand-forecast project for tests: 26 weeks of daily order lines of a few items."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from loopml.project import Project

# (item, country, mean daily quantity)
SERIES = (("10001", "UK", 20), ("10002", "UK", 6), ("10001", "FR", 4), ("10003", "DE", 2))


def demand_lines(seed: int = 5, series: Sequence[tuple[str, str, int]] = SERIES) -> pd.DataFrame:
    """One Poisson order line a day per series, from 2021-01-04, 26 weeks."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2021-01-04 10:00", periods=26 * 7, freq="D")
    return pd.DataFrame(
        [
            {"item": i, "country": c, "time": d, "qty": int(rng.poisson(m)) + 1}
            for i, c, m in series
            for d in days
        ]
    )


def project_file(forecast: Mapping[str, Any] | None = None) -> str:
    """The small project's ``loopml.yaml`` (a 3-step horizon, 10 trees) with ``forecast`` keys added to
    its ``forecast`` section; a test appends other sections as YAML text."""
    config: dict[str, Any] = {
        "name": "demand",
        "task": "forecast",
        "target": "qty",
        "event_time": "time",
        "source": {"kind": "parquet", "path": "data/lines.parquet"},
        "forecast": {
            "item": "item",
            "group_column": "country",
            "horizon": 3,
            "series_per_group": 3,
            "min_active": 3,
            "origins": 2,
            "tuning_origins": 1,
            **(forecast or {}),
        },
        "train": {"params": {"n_estimators": 10}},
    }
    return yaml.safe_dump(config, sort_keys=False)


def forecast_project(
    directory: Path, project_file: str, *, series: Sequence[tuple[str, str, int]] = SERIES
) -> Project:
    """``project_file`` (its source: ``data/lines.parquet``) over :func:`demand_lines`, ingested and
    trained."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    demand_lines(series=series).to_parquet(directory / "data" / "lines.parquet", index=False)
    (directory / "loopml.yaml").write_text(project_file, encoding="utf-8")
    project = Project.open(directory, environ={})
    project.ingest()
    project.train()
    return project
