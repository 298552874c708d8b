"""A small machine-failure project (a sensor data set shaped like AI4I 2020) for the contract tests.

Its columns cover every contract type and rule scoring enforces: an integer id (``UDI``), a text
column with a pattern (``Product ID``), a category (``Type``: L, M, H), a float with units in
brackets (``Air temperature [K]``), an integer (``Tool wear [min]``), a boolean (``maintained``) and
the event time (``when``, an input through its hour); the target is ``failure``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from loopml.project import Project

TEMPERATURE, WEAR = "Air temperature [K]", "Tool wear [min]"


def machine_rows(rows: int, seed: int = 3, first_id: int = 1) -> pd.DataFrame:
    """``rows`` readings, one an hour from 2024-01-01 (ids from ``first_id``)."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(["L", "M", "H"], rows, p=[0.6, 0.3, 0.1])
    temperature = np.round(rng.normal(300.0, 2.0, rows), 1)
    wear = rng.integers(0, 250, rows)
    maintained = rng.random(rows) < 0.3
    risk = (wear > 200) * 1.5 + (temperature > 302) + (kind == "L") * 0.5 - maintained * 1.0
    failure = (risk + rng.normal(0, 0.6, rows) > 1.4).astype(int)
    ids = np.arange(first_id, first_id + rows)
    return pd.DataFrame(
        {
            "UDI": ids,
            "Product ID": [f"{k}{10000 + i}" for k, i in zip(kind, ids, strict=True)],
            "Type": kind,
            TEMPERATURE: temperature,
            WEAR: wear,
            "maintained": maintained,
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(ids - first_id, unit="h"),
            "failure": failure,
        }
    )


def machines_project(root: Path, rows: int = 1_500, **overrides: Any) -> Project:
    """The project, ingested and trained (a small single-threaded LightGBM); ``overrides`` are
    top-level sections of loopml.yaml, merged over the defaults here."""
    (root / "data").mkdir(parents=True)
    machine_rows(rows).to_parquet(root / "data" / "machines.parquet", index=False)
    config: dict[str, Any] = {
        "name": "machines",
        "task": "binary",
        "target": "failure",
        "id_column": "UDI",
        "event_time": "when",
        "source": {"kind": "parquet", "path": "data/machines.parquet"},
        "contract": {"columns": {"Product ID": {"pattern": "^[LMH][0-9]{5}$"}}},
        "features": {"datetime_parts": ["hour"]},
        "train": {"params": {"n_estimators": 20, "n_jobs": 1}, "report": False},
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    (root / "loopml.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    project = Project.open(root, environ={})
    project.ingest()
    project.train()
    return project
