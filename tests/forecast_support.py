"""A small demand-forecast project for tests: 26 weeks of daily order lines of a few items."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

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
