"""Monitoring's reference, built at training time from the holdout: what the model saw and how much
each thing it saw matters.

The reference profile (:func:`~loopml.validate.profile.build_profile`) covers every column the
model consumes, as the monitor will see them in the prediction log:

- ``input``: the raw request columns (numbers and categories), as sent;
- ``window``: the entity window features, as :class:`~loopml.scoring.LoadedModel` computes them;
- ``derived``: what the pipeline's preprocessor makes of them and that has no raw counterpart
  (relative windows, datetime parts, codes of high-cardinality columns), taken from the
  preprocessor's output, so they are exactly the model's input values;
- ``prediction``: the served model's output (with, for a binary task, the positives' counts per
  bin, for concept drift; a refitted model's on its own scale, see :func:`served_prediction`).

Importance is each model input's mean absolute contribution to the raw score on (at most
:data:`IMPORTANCE_ROWS` of) the holdout rows (TreeSHAP or linear contributions,
:mod:`loopml.scoring.explain`) as a share of the total; a raw column gets the sum of its inputs'.
A model that cannot be explained falls back to its gain importance. For a binary task the holdout
also calibrates the label-free estimate (:func:`~loopml.train.calibration.fit_calibrator`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Settings
from loopml.errors import LoopMLError
from loopml.tasks import Task, get_task
from loopml.train.calibration import ScoreCalibrator, fit_calibrator
from loopml.train.fit import TrainResult
from loopml.validate.profile import Profile, ProfileSource, build_profile

__all__ = ["CYCLES", "IMPORTANCE_ROWS", "build_reference", "model_input_frame", "served_prediction"]

IMPORTANCE_ROWS = 2000
# The period of each datetime part: a monitoring window shorter than it sees only part of the cycle.
CYCLES = {
    "hour": "1d",
    "is_night": "1d",
    "dayofweek": "7d",
    "is_weekend": "7d",
    "day": "31d",
    "month": "365d",
}


def model_input_frame(pipeline: Any, features: pd.DataFrame) -> pd.DataFrame | None:
    """The estimator's input matrix for ``features`` (raw columns plus window features), named by the
    preprocessor's output names; None for a pipeline whose preprocessor does not name them."""
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) < 2:
        return None
    try:
        preprocessor = pipeline[:-1]
        matrix = preprocessor.transform(features)
        names = [str(n) for n in preprocessor.get_feature_names_out()]
    except (AttributeError, ValueError, TypeError, KeyError):
        return None
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    values = np.asarray(matrix, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(names):
        return None
    return pd.DataFrame(values, columns=names, index=features.index)


def _contribution_shares(pipeline: Any, matrix: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """Each model input's share of the mean absolute contribution, and the raw column each input is
    explained under; empty when the model cannot be explained."""
    from loopml.scoring.explain import Explainer

    rows = matrix.sample(n=IMPORTANCE_ROWS, random_state=0) if len(matrix) > IMPORTANCE_ROWS else matrix
    try:
        explainer = Explainer(pipeline)
        _, attribution = explainer.contributions(rows.to_numpy(dtype=float))
    except (LoopMLError, ValueError, TypeError):
        return {}, []
    means = np.abs(attribution.values).mean(axis=0)
    total = float(means.sum()) or 1.0
    return dict(zip(matrix.columns, (means / total).tolist(), strict=True)), list(explainer.groups)


def _importance(result: TrainResult, matrix: pd.DataFrame | None) -> dict[str, float]:
    """Shares per model input, then per raw column (the sum of its inputs') where it differs."""
    shares, groups = ({}, []) if matrix is None else _contribution_shares(result.pipeline, matrix)
    if not shares:
        return dict(result.importance)  # gain shares, by model input
    grouped: dict[str, float] = defaultdict(float)
    for name, group in zip(shares, groups, strict=True):
        grouped[group] += shares[name]
    return {**shares, **{g: v for g, v in grouped.items() if g not in shares}}


def _cycles(settings: Settings, datetimes: tuple[str, ...], derived: list[str]) -> dict[str, str]:
    parts = settings.features.datetime_parts
    names = {f"{c}_{p}": CYCLES[p] for c in datetimes for p in parts if p in CYCLES}
    return {n: cycle for n, cycle in names.items() if n in derived}


def _positives(task: Task, labels: np.ndarray) -> np.ndarray | None:
    """The rows labelled positive (binary tasks with numeric labels), for concept drift."""
    return labels == 1 if task.positive_class and labels.dtype.kind in "biuf" else None


def served_prediction(task: Task, result: TrainResult, prediction: np.ndarray) -> np.ndarray:
    """The holdout's predictions on the served model's scale.

    A refitted version (``metrics["refit"]``) serves a pipeline that also learnt the holdout, so its
    own scores there are in-sample, while ``prediction`` (the judged fit's) are honest but from
    another model. Each holdout row gets the served model's holdout score of the same rank as its
    judged score: the served model's distribution, the judged fit's out-of-sample ranking (the
    positives stay where a model that never saw them puts them). Unchanged without a refit."""
    if not result.metrics.get("refit") or task.trainer is not None:
        return prediction
    served = np.asarray(task.predict(result.pipeline, result.holdout[result.columns.all]))
    if served.ndim != 1 or np.asarray(prediction).ndim != 1:
        return served if served.ndim == 1 else np.argmax(served, axis=1)
    ranks = np.argsort(np.argsort(prediction, kind="stable"), kind="stable")
    return np.sort(served)[ranks]


def build_reference(
    settings: Settings, result: TrainResult, prediction: np.ndarray
) -> tuple[Profile, ScoreCalibrator | None]:
    """The reference profile of ``result``'s holdout (see the module's docstring) and, for a binary
    task whose scores need it, the estimate's calibrator (its findings in ``profile.calibration``).

    ``prediction``: one value per holdout row (the score, or the most likely class index) from the
    judged fit; a refitted version's are put on its own scale (:func:`served_prediction`)."""
    cols, task = result.columns, get_task(settings.task)
    prediction = served_prediction(task, result, prediction)
    frame = result.holdout.assign(prediction=prediction)
    raw = [*cols.numeric, *cols.windows, *cols.categorical]
    matrix = None if task.trainer is not None else model_input_frame(result.pipeline, result.holdout)
    # A matrix column named like a holdout column (a passed-through id or time, "prediction") is
    # that column, not something the preprocessor derived: it is profiled as what it is, once.
    derived = [] if matrix is None else [c for c in matrix.columns if c not in raw and c not in frame.columns]
    if matrix is not None and derived:
        frame = pd.concat([frame, matrix[derived]], axis=1)
    predicted = ["prediction"] if task.profile_prediction == "numeric" else []
    sources: dict[str, ProfileSource] = {
        **dict.fromkeys(cols.windows, "window"),
        **dict.fromkeys(derived, "derived"),
        "prediction": "prediction",
    }
    labels = np.asarray(result.holdout_labels)
    profile = build_profile(
        frame,
        [*cols.numeric, *cols.windows, *derived, *predicted],
        [*cols.categorical, *(["prediction"] if task.profile_prediction == "categorical" else [])],
        positives=_positives(task, labels),
        sources=sources,
        cycles=_cycles(settings, cols.datetime, derived),
        importance=_importance(result, matrix),
    )
    if _positives(task, labels) is None or np.asarray(prediction).ndim != 1:
        return profile, None
    calibrator, info = fit_calibrator(
        labels == 1, np.asarray(prediction, dtype=float), seed=settings.train.seed
    )
    return Profile(profile.columns, profile.rows, profile.importance, info), calibrator
