"""Training: fit, choose on the validation slice, tune, evaluate and report a model (with sanity
warnings), and train a version end to end into the registry (:func:`train_and_register`)."""

from __future__ import annotations

from loopml.train.compare import UnseenRows, paired_gain, trained_through, unseen_rows
from loopml.train.derived import derived_features
from loopml.train.fit import LOWER_IS_BETTER, HoldoutAfter, TrainResult, fit, fit_served, primary_metric
from loopml.train.register import TrainOutcome, train_and_register
from loopml.train.runs import finish_run, start_run
from loopml.train.sanity import SanityWarning, WarningKind
from loopml.train.tune import TuneResult, tune

__all__ = [
    "LOWER_IS_BETTER",
    "HoldoutAfter",
    "SanityWarning",
    "TrainOutcome",
    "TrainResult",
    "TuneResult",
    "UnseenRows",
    "WarningKind",
    "derived_features",
    "finish_run",
    "fit",
    "fit_served",
    "paired_gain",
    "primary_metric",
    "start_run",
    "train_and_register",
    "trained_through",
    "tune",
    "unseen_rows",
]
