"""Simulated credit-card fraud example: a seeded transaction generator with a regime change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopml.examples.fraud.simulator import SimulationConfig, simulate
from loopml.project.examples import Example

__all__ = ["EXAMPLE", "SimulationConfig", "simulate", "write_data"]


def write_data(data_dir: Path, **options: Any) -> None:
    """History to train on (before the regime change) and later traffic to replay through the API.

    ``transactions.parquet`` holds the days up to the one before the fraud pattern changes;
    ``replay.parquet`` holds the rest: first one ordinary, unseen day, then the new pattern.
    """
    config = SimulationConfig(**options)
    frame = simulate(config)
    change = config.regime_change_day
    cut = change - 1 if change is not None and change > 1 else max(config.days - 30, 1)
    history = frame["tx_time_days"] < cut
    frame[history].to_parquet(data_dir / "transactions.parquet", index=False)
    frame[~history].to_parquet(data_dir / "replay.parquet", index=False)


EXAMPLE = Example(
    name="fraud",
    summary="card transactions from a seeded simulator with a fraud regime change (binary, entity windows)",
    package=__name__,
    write_data=f"{__name__}:write_data",
    demo=f"{__name__}.demo",
    demo_options=("quick", "seed"),
)
