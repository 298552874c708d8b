"""What the training fits, chosen on the validation slice (the newest part of the training rows),
never on the holdout.

Two choices, each made only when the validation slice says it helps:

* **Datetime parts.** With ``features.datetime_parts`` left at its default, the configured model is
  fitted with and without the parts of the datetime columns; the parts stay only when they help.
  (A list written in ``loopml.yaml`` is the user's choice and is kept as it is.)
* **The model.** With ``train.model: lightgbm`` and no model parameter fixed in ``train.params``
  (tuned or not), the task's reference candidate, LightGBM with its own defaults (``LGBMClassifier()``
  / ``LGBMRegressor()``), is fitted on the same rows and features. It is the one kept unless loopml's
  configuration does better: the default training is not worse than doing nothing.

"Helps" and "does better" are judged with a paired bootstrap of the validation rows: the richer
option (the datetime parts; loopml's untuned configuration over LightGBM's defaults) must score
better on at least :data:`WIN_SHARE` of the resamples. A difference within the noise of a small
validation slice keeps the simpler option, so a chance win on validation does not become a loss on
the holdout. With ``train.tune`` on, the best trial and LightGBM's defaults compete on their
validation scores, as one more trial of the search.

Every candidate's validation score, the winner, its margin and what was dropped and why are recorded
(``metrics["selection"]``), for the report and ``loopml train --json``. A later, wider search adds
candidates through :func:`_model_candidates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from loopml.config import Settings
from loopml.errors import ConfigError, did_you_mean
from loopml.features import FeatureColumns, build_preprocessor
from loopml.tasks import Task
from loopml.tasks.base import LIGHTGBM_RUNTIME
from loopml.train import evaluate
from loopml.train.distributed import fit_estimator
from loopml.train.tune import TuneResult, tune

__all__ = ["Choice", "Rows", "choose", "without_datetime"]

LINEAR = frozenset({"logistic", "ridge"})  # models that need imputed, scaled numbers
WIN_SHARE = 0.9  # the richer option must do better on this share of the bootstrap resamples
_DRAWS = 200  # bootstrap resamples of the validation rows (fewer for very large slices)
_LABELS = ("all", "without datetime parts")  # the feature sets compared


@dataclass(frozen=True)
class Rows:
    """The model inputs and labels with the positions of the fitting and validation rows."""

    X: pd.DataFrame
    y: np.ndarray
    fit: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class Choice:
    """What to fit on the whole training part: a candidate, its parameters and its features.

    ``validation`` holds the chosen fit's score on the validation slice (and, for a binary task, the
    cost-minimising threshold chosen there); ``selection`` the JSON record of the comparison (empty
    when nothing was compared)."""

    model: str
    params: dict[str, Any]
    columns: FeatureColumns
    preprocessor: Any
    validation: dict[str, Any] = field(default_factory=dict)
    tuning: TuneResult | None = None
    selection: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Slice:
    """One feature set's preprocessor, fitted on the fitting rows, and the matrices it gives."""

    columns: FeatureColumns
    preprocessor: Any
    X_fit: Any
    X_valid: Any


@dataclass(frozen=True, eq=False)
class _Fitted:
    """One candidate fitted on the fitting rows and scored on the validation rows."""

    model: str
    params: dict[str, Any]
    estimator: Any
    score: float  # the validation metric, signed so that higher is better
    output: np.ndarray
    features: str = "all"  # which feature set: "all" or "without datetime parts"
    tuned_trials: int | None = None

    @property
    def classes(self) -> Any:
        return getattr(self.estimator, "classes_", None)


def without_datetime(columns: FeatureColumns, event_time: str | None) -> FeatureColumns:
    """``columns`` without the datetime parts: the datetime columns are no longer model inputs (the
    event time stays one when window features need it)."""
    keep = {event_time} if columns.windows and event_time else set()
    gone = set(columns.datetime) - keep
    return replace(columns, datetime=(), inputs=tuple(c for c in columns.inputs if c not in gone))


def _datetime_variants(settings: Settings, columns: FeatureColumns) -> list[FeatureColumns]:
    """The feature sets to compare: as configured, and without datetime parts when those are the
    defaults (not written in loopml.yaml) and something else is left to learn from."""
    features = settings.features
    if not columns.datetime or features.sequences is not None or not features.datetime_parts:
        return [columns]
    if "datetime_parts" in features.model_fields_set:
        return [columns]
    bare = without_datetime(columns, settings.event_time)
    return [columns, bare] if bare.all else [columns]


def _model_candidates(task: Task, settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    """Candidates fitted beside the configured model: the task's reference (LightGBM with its own
    defaults) when the configured model is LightGBM with loopml's defaults (no model parameter fixed:
    a fixed one is the user's choice). Run-time parameters (threads) carry over."""
    cfg = settings.train
    if task.reference is None or cfg.model != "lightgbm" or not set(cfg.params) <= LIGHTGBM_RUNTIME:
        return []
    return [(task.reference, {k: v for k, v in cfg.params.items() if k in LIGHTGBM_RUNTIME})]


def _slice(columns: FeatureColumns, settings: Settings, rows: Rows) -> _Slice:
    scale = settings.train.model in LINEAR
    pre = build_preprocessor(columns, settings.features, scale=scale)
    fitted = clone(pre).fit(rows.X.iloc[rows.fit], rows.y[rows.fit])
    return _Slice(
        columns,
        pre,
        fitted.transform(rows.X.iloc[rows.fit]),
        fitted.transform(rows.X.iloc[rows.valid]),
    )


@dataclass(frozen=True)
class _Judge:
    """Scores outputs on the validation rows with the primary metric, signed so that higher is
    better, and compares two candidates by a paired bootstrap of those rows."""

    task: Task
    metric: str
    greater: bool
    k: int
    y: np.ndarray
    seed: int

    def score(self, output: np.ndarray, classes: Any, rows: np.ndarray | None = None) -> float:
        y = self.y if rows is None else self.y[rows]
        values = self.task.metrics(y, output if rows is None else output[rows], k=self.k, classes=classes)
        if self.metric not in values:
            raise ConfigError(
                f"train.metric '{self.metric}' is not a {self.task.name} metric; "
                f"{did_you_mean(self.metric, values)}"
            )
        value = float(values[self.metric])
        return value if self.greater else -value

    def rate(self, estimator: Any, X_valid: Any) -> tuple[float, np.ndarray]:
        output = self.task.predict(estimator, X_valid)
        return self.score(output, getattr(estimator, "classes_", None)), output

    def win_share(self, a: _Fitted, b: _Fitted) -> float:
        """The share of bootstrap resamples of the validation rows on which ``a`` scores strictly
        better than ``b`` (the same resamples for both)."""
        n = len(self.y)
        draws = int(np.clip(4_000_000 // max(n, 1), 50, _DRAWS))
        rng = np.random.default_rng(self.seed)
        wins = 0
        for _ in range(draws):
            rows = rng.integers(0, n, n)
            wins += bool(self.score(a.output, a.classes, rows) > self.score(b.output, b.classes, rows))
        return wins / draws


def choose(
    task: Task,
    settings: Settings,
    rows: Rows,
    columns: FeatureColumns,
    metric: str,
    greater: bool,
    *,
    storage: str | None = None,
    client: Any = None,
    judge: bool = True,
) -> Choice:
    """Fit the candidates on the fitting rows, score them on the validation rows and choose.

    ``judge=False`` (a served-only fit): when there is nothing to choose, return the configured model
    at once without fitting anything (no validation score, no threshold)."""
    cfg = settings.train
    variants = _datetime_variants(settings, columns)
    others = _model_candidates(task, settings)
    if not judge and len(variants) == 1 and not others and not cfg.tune.trials:
        pre = build_preprocessor(columns, settings.features, scale=cfg.model in LINEAR)
        return Choice(cfg.model, dict(cfg.params), columns, pre)
    judge_ = _Judge(task, metric, greater, cfg.precision_at_k, rows.y[rows.valid], cfg.seed)
    fitter = _Fitter(task, cfg.seed, rows.y[rows.fit], client, judge_)
    slices = [_slice(v, settings, rows) for v in variants]
    part, fits, parts, dropped = _pick_features(settings, slices, fitter)
    features = _LABELS[slices.index(part)]
    tuning = None
    if cfg.tune.trials:
        tuning, tuned = _tuned(task, settings, rows, part, judge_, storage, client, features)
        fits.append(tuned)
    elif len(slices) == 1:
        fits.append(fitter.fit(cfg.model, dict(cfg.params), part, features))
    configured = [f for f in fits if f.features == features]
    reference = [fitter.fit(model, params, part, features) for model, params in others]
    fits += reference
    shares: dict[int, float] = {}  # id of a fit -> how often it beat LightGBM's defaults
    best = _against_reference(configured, reference[0], judge_, shares) if reference else _best(configured)
    validation = _validation(task, settings, rows, best, greater)
    selection = _selection(fits, best, metric, greater, dropped, (shares, parts)) if len(fits) > 1 else {}
    return Choice(best.model, best.params, part.columns, part.preprocessor, validation, tuning, selection)


@dataclass(frozen=True)
class _Fitter:
    """Fits a candidate on the fitting rows (on Dask with a client) and scores it on validation."""

    task: Task
    seed: int
    y_fit: np.ndarray
    client: Any
    judge: _Judge

    def fit(self, model: str, params: dict[str, Any], part: _Slice, features: str) -> _Fitted:
        candidate = self.task.candidate(model, params, self.seed)
        estimator = fit_estimator(candidate, part.X_fit, self.y_fit, self.client)
        return _Fitted(model, params, estimator, *self.judge.rate(estimator, part.X_valid), features=features)


def _pick_features(
    settings: Settings, slices: list[_Slice], fitter: _Fitter
) -> tuple[_Slice, list[_Fitted], dict[int, float], list[dict[str, Any]]]:
    """With two feature sets, the configured model on each: the datetime parts stay only when they
    help on :data:`WIN_SHARE` of the resamples. The chosen set, the fits, the share (by the id of the
    fit with the parts) and what was dropped."""
    if len(slices) == 1:
        return slices[0], [], {}, []
    cfg = settings.train
    fits = [
        fitter.fit(cfg.model, dict(cfg.params), s, label) for s, label in zip(slices, _LABELS, strict=True)
    ]
    share = fitter.judge.win_share(fits[0], fits[1])
    if share >= WIN_SHARE:
        return slices[0], fits, {id(fits[0]): share}, []
    judge = fitter.judge
    dropped = _dropped_parts(settings, slices[0].columns, fits, share, judge.greater, judge.metric)
    return slices[1], fits, {id(fits[0]): share}, [dropped]


def _against_reference(
    configured: list[_Fitted], reference: _Fitted, judge: _Judge, shares: dict[int, float]
) -> _Fitted:
    """The reference (LightGBM's defaults) unless a configured fit does better: clearly (on
    :data:`WIN_SHARE` of the resamples) for an untuned one; by its score for a tuned one, which
    competes with the reference as one more trial of the search the user asked for."""
    best = reference
    for fitted in configured:
        if fitted.tuned_trials is None:
            shares[id(fitted)] = judge.win_share(fitted, reference)
            if shares[id(fitted)] < WIN_SHARE:
                continue
        if fitted.score > best.score:
            best = fitted
    return best


def _best(fits: list[_Fitted]) -> _Fitted:
    """The best validation score; on a tie the earlier candidate (the configured model comes first)."""
    best = fits[0]
    for fitted in fits[1:]:
        if fitted.score > best.score:
            best = fitted
    return best


def _tuned(
    task: Task,
    settings: Settings,
    rows: Rows,
    part: _Slice,
    judge: _Judge,
    storage: str | None,
    client: Any,
    features: str,
) -> tuple[TuneResult, _Fitted]:
    """Tune the configured model on ``part``'s features; the best trial's fit (reused when this run
    fitted it)."""
    cfg = settings.train
    if storage is None:
        raise ConfigError("train.tune needs the metadata store's URL to keep the study.")
    y_fit, y_valid = rows.y[rows.fit], rows.y[rows.valid]
    tuning = tune(
        task,
        cfg.model,
        dict(cfg.params),
        cfg.tune,
        storage=storage,
        study_name=f"loopml-{settings.name}-{cfg.model}",
        data=(part.X_fit, y_fit, part.X_valid, y_valid),
        score=lambda estimator: judge.rate(estimator, part.X_valid)[0],
        seed=cfg.seed,
        client=client,
    )
    params = tuning.best_params
    estimator = tuning.best_estimator
    if estimator is None:
        estimator = fit_estimator(task.candidate(cfg.model, params, cfg.seed), part.X_fit, y_fit, client)
    score, output = judge.rate(estimator, part.X_valid)
    return tuning, _Fitted(cfg.model, params, estimator, score, output, features, len(tuning.trials))


def _validation(task: Task, settings: Settings, rows: Rows, best: _Fitted, greater: bool) -> dict[str, Any]:
    validation: dict[str, Any] = {"score": best.score if greater else -best.score, "rows": len(rows.valid)}
    if task.positive_class:
        costs = settings.train.costs
        validation["threshold"] = evaluate.cost_threshold(
            rows.y[rows.valid], best.output, costs.false_negative, costs.false_positive
        )
    return validation


def _entry(fitted: _Fitted, greater: bool, share: float | None, parts: float | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "candidate": fitted.model,
        "features": fitted.features,
        "validation": fitted.score if greater else -fitted.score,
    }
    if fitted.tuned_trials is not None:
        entry["tuned_trials"] = fitted.tuned_trials
    if share is not None:  # the share of resamples on which it beat LightGBM's defaults
        entry["win_share"] = share
    if parts is not None:  # the share of resamples on which the datetime parts helped
        entry["parts_win_share"] = parts
    return entry


def _dropped_parts(
    settings: Settings,
    columns: FeatureColumns,
    fits: list[_Fitted],
    share: float,
    greater: bool,
    metric: str,
) -> dict[str, Any]:
    full, bare = fits
    sign = 1 if greater else -1
    parts = ", ".join(settings.features.datetime_parts)
    return {
        "features": [f"{c}_{p}" for c in columns.datetime for p in settings.features.datetime_parts],
        "columns": list(columns.datetime),
        "reason": f"the datetime parts ({parts}) of {', '.join(columns.datetime)} did not help on the "
        f"validation slice: {metric} {sign * full.score:.4f} with them, {sign * bare.score:.4f} without "
        f"(better with them on {share:.0%} of resamples, {WIN_SHARE:.0%} needed)",
        "setting": "features.datetime_parts",
    }


def _selection(
    fits: list[_Fitted],
    best: _Fitted,
    metric: str,
    greater: bool,
    dropped: list[dict[str, Any]],
    shares: tuple[dict[int, float], dict[int, float]],
) -> dict[str, Any]:
    """The JSON record: every candidate's validation score (and how often it beat the simpler option
    on the resamples), the winner, and its margin over the best other candidate on the same features
    (in the metric's units; positive: the winner scores better, negative: the other's lead was
    within the noise, so the simpler one was kept)."""
    rivals = [f for f in fits if f is not best and f.features == best.features]
    rival = max(rivals or [f for f in fits if f is not best], key=lambda f: f.score)
    margin = float(best.score - rival.score)
    value = best.score if greater else -best.score
    summary = f"{_describe(best)} chosen on the validation slice: {metric} {value:.4f}, "
    if margin >= 0:
        summary += f"{margin:.4f} better than {_describe(rival)}"
    else:
        share = shares[0].get(id(rival), shares[1].get(id(rival)))
        summary += f"{_describe(rival)} scored {-margin:.4f} better" + (
            f" but on only {share:.0%} of resamples ({WIN_SHARE:.0%} needed): within the noise"
            if share is not None
            else ""
        )
    return {
        "metric": metric,
        "chosen": best.model,
        "features": best.features,
        "margin": margin,
        "summary": summary,
        "candidates": [
            {**_entry(f, greater, *(s.get(id(f)) for s in shares)), "chosen": f is best} for f in fits
        ],
        "dropped": dropped,
        "rule": f"an untuned richer option must score better on {WIN_SHARE:.0%} of bootstrap resamples "
        "of the validation rows; a tuned one, better on the validation rows",
    }


_NAMES = {"lightgbm": "LightGBM with loopml's defaults", "lightgbm_default": "LightGBM with its own defaults"}


def _describe(fitted: _Fitted) -> str:
    name = _NAMES.get(fitted.model, fitted.model)
    if fitted.tuned_trials is not None:
        name = f"{fitted.model} tuned ({fitted.tuned_trials} trials)"
    return name + (" without datetime parts" if fitted.features != _LABELS[0] else "")
