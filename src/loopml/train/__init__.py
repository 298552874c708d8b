"""Training: fit, tune, evaluate and report a model, and train a version end to end into the
registry (:func:`train_and_register`)."""

from __future__ import annotations

from loopml.train.fit import LOWER_IS_BETTER, TrainResult, fit, fit_served, primary_metric
from loopml.train.register import TrainOutcome, train_and_register
from loopml.train.runs import finish_run, start_run
from loopml.train.tune import TuneResult, tune

__all__ = [
    "LOWER_IS_BETTER",
    "TrainOutcome",
    "TrainResult",
    "TuneResult",
    "finish_run",
    "fit",
    "fit_served",
    "primary_metric",
    "start_run",
    "train_and_register",
    "tune",
]
