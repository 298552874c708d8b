"""Training: fit, tune, evaluate, gate and report."""

from __future__ import annotations

from loopml.train.fit import TrainResult, fit
from loopml.train.runs import finish_run, start_run

__all__ = ["TrainResult", "finish_run", "fit", "start_run"]
