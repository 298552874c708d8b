"""Example projects shipped with loopml: a project file plus data made or copied locally."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from loopml.config import PROJECT_FILE
from loopml.errors import ConfigError, InputError, did_you_mean

__all__ = ["EXAMPLES", "write_example"]

EXAMPLES = ("fraud", "retail")


def write_example(name: str, directory: Path, **data_options: Any) -> Path:
    """Write example ``name``'s ``loopml.yaml`` and data into ``directory``; returns the project file."""
    if name not in EXAMPLES:
        raise ConfigError(f"unknown example '{name}'; {did_you_mean(name, EXAMPLES)}")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / PROJECT_FILE
    if target.exists():
        raise InputError(f"{target} already exists; choose an empty directory or remove it.")
    template = resources.files(__name__).joinpath(name, PROJECT_FILE).read_text(encoding="utf-8")
    data_dir = directory / "data"
    data_dir.mkdir(exist_ok=True)
    if name == "fraud":
        _write_fraud(data_dir, **data_options)
    elif name == "retail":
        _write_retail(data_dir, **data_options)
    target.write_text(template, encoding="utf-8")
    return target


def _write_retail(data_dir: Path, months: int | None = None) -> None:
    """The raw Online Retail lines shipped in the package (the first ``months`` months only, if given)."""
    import pandas as pd

    shipped = resources.files(__name__).joinpath("retail", "data", "online_retail.parquet")
    with resources.as_file(shipped) as path:
        if months is None:
            (data_dir / "online_retail.parquet").write_bytes(path.read_bytes())
            return
        frame = pd.read_parquet(path)
    first = frame["InvoiceDate"].min().to_period("M")
    keep = frame["InvoiceDate"].dt.to_period("M") < first + months
    frame[keep].to_parquet(data_dir / "online_retail.parquet", index=False)


def _write_fraud(data_dir: Path, **options: Any) -> None:
    """History to train on (before the regime change) and later traffic to replay through the API.

    ``transactions.parquet`` holds the days up to the one before the fraud pattern changes;
    ``replay.parquet`` holds the rest: first one ordinary, unseen day, then the new pattern.
    """
    from loopml.examples.fraud import SimulationConfig, simulate

    config = SimulationConfig(**options)
    frame = simulate(config)
    change = config.regime_change_day
    cut = change - 1 if change is not None and change > 1 else max(config.days - 30, 1)
    history = frame["tx_time_days"] < cut
    frame[history].to_parquet(data_dir / "transactions.parquet", index=False)
    frame[~history].to_parquet(data_dir / "replay.parquet", index=False)
