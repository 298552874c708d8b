"""Predictive maintenance on NASA C-MAPSS FD001: turbofan engines run to failure.

The package ships the FD001 subset as Parquet (``data/train_FD001.parquet``,
``data/test_FD001.parquet``) with the true remaining useful life of each test engine
(``data/RUL_FD001.csv``) and NASA's readme. :func:`write_data` labels the training trajectories
(RUL capped at ``maintenance.rul_cap``, "fails within ``maintenance.failure_within`` cycles") and
writes the test trajectories for replay; :func:`evaluate_last_cycle` scores predictions the way the
PHM08 challenge did: the last cycle of each test engine, RMSE and the asymmetric PHM08 score.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import PROJECT_FILE, MaintenanceConfig, parse_settings
from loopml.errors import InputError
from loopml.examples import REAL_DATA_DEMO
from loopml.project.examples import Example

__all__ = [
    "EXAMPLE",
    "PUBLISHED",
    "SENSORS",
    "evaluate_last_cycle",
    "label_trajectories",
    "last_cycles",
    "load_fd001",
    "phm08_score",
    "test_truth",
    "write_data",
]

SENSORS = tuple(f"s{i}" for i in range(1, 22))

# Published FD001 test figures (last cycle, RUL capped near 125). ``checked``: read in the paper itself;
# the others are as widely quoted in later papers' comparison tables, not checked against the original.
PUBLISHED: tuple[dict[str, Any], ...] = (
    {
        "model": "CNN",
        "rmse": 18.45,
        "phm08_score": 1286.7,
        "checked": False,
        "source": "Babu, Zhao, Li: Deep convolutional neural network based regression approach for "
        "estimation of remaining useful life, DASFAA 2016",
    },
    {
        "model": "LSTM",
        "rmse": 16.14,
        "phm08_score": 338.0,
        "checked": True,
        "source": "Zheng, Ristovski, Farahat, Gupta: Long short-term memory network for remaining "
        "useful life estimation, IEEE ICPHM 2017",
    },
    {
        "model": "DCNN",
        "rmse": 12.61,
        "phm08_score": 273.7,
        "checked": False,
        "source": "Li, Ding, Sun: Remaining useful life estimation in prognostics using deep "
        "convolution neural networks, Reliability Engineering & System Safety 172 (2018)",
    },
)


def _shipped(name: str) -> Any:
    return resources.files(__name__).joinpath("data", name)


def load_fd001(split: str, engines: int | None = None) -> pd.DataFrame:
    """The raw ``train`` or ``test`` trajectories: engine, cycle, three settings, 21 sensors."""
    with resources.as_file(_shipped(f"{split}_FD001.parquet")) as path:
        frame = pd.read_parquet(path)
    return frame if engines is None else frame[frame["engine"] <= engines].reset_index(drop=True)


def test_truth(engines: int | None = None) -> pd.DataFrame:
    """``engine, rul``: the true remaining useful life after each test engine's last cycle."""
    with resources.as_file(_shipped("RUL_FD001.csv")) as path:
        frame = pd.read_csv(path)
    return frame if engines is None else frame[frame["engine"] <= engines].reset_index(drop=True)


def label_trajectories(
    frame: pd.DataFrame, config: MaintenanceConfig, end_rul: pd.Series | None = None
) -> pd.DataFrame:
    """Add the capped RUL and the failure label to each row of run-to-failure trajectories.

    A row's RUL is the cycles left until its engine's failure: its last cycle (plus ``end_rul``,
    the RUL after the last cycle, indexed by engine, for trajectories cut before failure).

    >>> rows = pd.DataFrame({"engine": [1, 1, 1], "cycle": [1, 2, 3]})
    >>> cfg = MaintenanceConfig(rul_cap=1, failure_within=1)
    >>> label_trajectories(rows, cfg)[["rul", "fails_within_30"]].values.tolist()
    [[1, 0], [1, 1], [0, 1]]
    """
    last = frame.groupby("engine")["cycle"].transform("max")
    if end_rul is not None:
        last = last + frame["engine"].map(end_rul).to_numpy()
    remaining = (last - frame["cycle"]).astype(int)
    return frame.assign(
        rul=np.minimum(remaining, config.rul_cap),
        **{config.failure_target: (remaining <= config.failure_within).astype(int)},
    )


def last_cycles(frame: pd.DataFrame) -> pd.DataFrame:
    """The last row of each engine, in engine order."""
    return frame.sort_values(["engine", "cycle"]).groupby("engine").tail(1).reset_index(drop=True)


def phm08_score(predicted: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray) -> float:
    """The PHM08 challenge score: sum of exp(-d/13)-1 for early (d < 0), exp(d/10)-1 for late (d >= 0).

    ``d = predicted - true``; predicting failure too late costs more than too early. Lower is better.

    >>> round(phm08_score([90, 110], [100, 100]), 4)  # 10 early, 10 late
    2.8764
    """
    d = np.asarray(predicted, dtype=float) - np.asarray(true, dtype=float)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def evaluate_last_cycle(
    predicted: Sequence[float] | np.ndarray, true_rul: Sequence[float] | np.ndarray, rul_cap: int
) -> dict[str, float]:
    """Test RMSE, MAE and PHM08 score of last-cycle predictions against the capped true RUL."""
    true = np.minimum(np.asarray(true_rul, dtype=float), rul_cap)
    d = np.asarray(predicted, dtype=float) - true
    return {
        "test_rmse": float(np.sqrt(np.mean(d**2))),
        "test_mae": float(np.mean(np.abs(d))),
        "phm08_score": phm08_score(predicted, true),
        "test_engines": len(true),
    }


def _config() -> MaintenanceConfig:
    """The ``maintenance`` section of this example's own ``loopml.yaml``."""
    text = resources.files(__name__).joinpath(PROJECT_FILE).read_text(encoding="utf-8")
    settings = parse_settings(text, environ={})
    return settings.maintenance or MaintenanceConfig()


def write_data(data_dir: Path, engines: int | None = None, hold_back: int = 0) -> None:
    """Labelled training trajectories and the test ones to replay (the first ``engines`` only, if given).

    ``cycles.parquet``: every training cycle with ``rul`` and the failure label (the project's source).
    ``later_cycles.parquet``: with ``hold_back``, the last ``hold_back`` training engines, kept out of
    ``cycles.parquet``: run-to-failure data that arrives later (the demo's retraining cycle).
    ``test_cycles.parquet``: the test trajectories, cut before failure, unlabelled.
    ``test_rul.csv``: the true RUL after each test engine's last cycle (NASA's ``RUL_FD001.txt``).
    """
    config = _config()
    cycles = label_trajectories(load_fd001("train", engines), config)
    ids = np.sort(cycles["engine"].unique())
    if not 0 <= hold_back < len(ids):
        raise InputError(f"hold_back: at most {len(ids) - 1} of the {len(ids)} engines; got {hold_back}.")
    later = cycles["engine"].isin(ids[len(ids) - hold_back :])  # none when hold_back is 0
    cycles[~later].to_parquet(data_dir / "cycles.parquet", index=False)
    if hold_back:
        cycles[later].to_parquet(data_dir / "later_cycles.parquet", index=False)
    load_fd001("test", engines).to_parquet(data_dir / "test_cycles.parquet", index=False)
    test_truth(engines).to_csv(data_dir / "test_rul.csv", index=False)


EXAMPLE = Example(
    name="maintenance",
    summary="NASA C-MAPSS FD001 turbofan engines: remaining useful life and failure within N cycles",
    package=__name__,
    write_data=f"{__name__}:write_data",
    demo=f"{__name__}.demo",
    demo_options=("quick",),
    not_taken={"seed": REAL_DATA_DEMO["seed"]},
)
