"""Training: fit, tune, evaluate, gate and report."""

from __future__ import annotations

from loopml.train.fit import LOWER_IS_BETTER, TrainResult, fit, fit_served, primary_metric
from loopml.train.runs import finish_run, start_run
from loopml.train.tune import TuneResult, tune

__all__ = [
    "LOWER_IS_BETTER",
    "TrainResult",
    "TuneResult",
    "finish_run",
    "fit",
    "fit_served",
    "primary_metric",
    "start_run",
    "tune",
]
