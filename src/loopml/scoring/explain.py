"""Explanations: each prediction's feature contributions, in the names of the user's columns.

A contribution says how much one feature moved a row's **raw score** away from the model's
**base value** (a tree model's average raw score over its training rows; a linear model's
intercept), so that for every row::

    base_value + sum(contributions) == raw_score      (to rounding, checked on every call)

The raw score is the model's output before its link: the log-odds of the positive class for a
binary classifier, the predicted class's raw score (its logit, the softmax input) for a multiclass
one (the class explained is the predicted one, given as ``explained_class``), and the value itself
for a regressor (LightGBM's raw score for objectives with a log link such as ``poisson``).

How the contributions are computed, by estimator:

- **LightGBM**: the booster's own TreeSHAP, ``predict(X, pred_contrib=True)``.
- **HistGradientBoosting** (no contributions of its own): the same exact path-dependent TreeSHAP,
  implemented in :mod:`loopml.scoring.treeshap` over its trees (slower: ~0.4 s a call for 100 trees).
- **Linear models** (``LogisticRegression``, ``Ridge``): coefficient times the model's input value
  (numbers imputed and standardised, as the pipeline scales them); the intercept is the base value.

Contributions of the model's input columns are summed back to the user's column they come from
(the parts of a datetime to the datetime column, an encoded category to its column); entity window
features, relative window features and sequence windows keep their own names (they are configured
in loopml.yaml).
An explanation keeps the ``k`` largest by magnitude and sums the others into one ``(rest)`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.errors import InputError
from loopml.scoring.compiled import SMALL_BATCH
from loopml.scoring.treeshap import expected_value, hist_gradient_boosting_trees, tree_shap

__all__ = [
    "DEFAULT_TOP_K",
    "MAX_TOP_K",
    "REST",
    "Contribution",
    "Explainer",
    "Explanation",
    "check_top_k",
    "contribution_importance",
    "dense",
    "feature_groups",
]

DEFAULT_TOP_K = 5
MAX_TOP_K = 100
REST = "(rest)"  # the entry that sums every feature outside the top k
_TOLERANCE = 1e-6  # base + contributions vs the raw score, relative to max(1, |raw score|)


@dataclass(frozen=True)
class Contribution:
    """One feature's (or, for :data:`REST`, several features') contribution to a raw score."""

    feature: str
    contribution: float
    features: int = 1  # how many features it sums (more than one only for the rest)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"feature": self.feature, "contribution": self.contribution}
        if self.feature == REST:
            out["features"] = self.features
        return out


@dataclass(frozen=True)
class Explanation:
    """Why one row scored as it did: ``base_value + sum(c.contribution) == raw_score``.

    ``contributions`` are the top k by magnitude, largest first, then the ``(rest)`` entry when
    there are more features; ``explained_class`` is the class whose raw score is explained (the
    positive class of a binary classifier, the predicted one of a multiclass; None for regression).
    """

    raw_score: float
    base_value: float
    contributions: tuple[Contribution, ...]
    explained_class: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the API's ``explanation``."""
        out: dict[str, Any] = {
            "raw_score": self.raw_score,
            "base_value": self.base_value,
            "contributions": [c.to_dict() for c in self.contributions],
        }
        if self.explained_class is not None:
            out["class"] = self.explained_class
        return out


@dataclass(frozen=True)
class _Attribution:
    """Per model-input column, each row's contributions to the output explained (one class's)."""

    values: np.ndarray  # rows x model inputs
    base: np.ndarray  # rows
    raw: np.ndarray  # rows
    chosen: np.ndarray | None  # the class (output) index of each row; None for a single output


def check_top_k(k: int) -> None:
    """An :class:`InputError` unless ``k`` (how many features an explanation names) is in range."""
    if not 1 <= k <= MAX_TOP_K:
        raise InputError(f"explain k must be from 1 to {MAX_TOP_K}; got {k}.")


def dense(matrix: Any) -> np.ndarray:
    """A preprocessor's output as a float64 array (no copy when it already is one)."""
    if hasattr(matrix, "toarray"):  # a sparse matrix
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


def _pick(values: np.ndarray, base: np.ndarray, raw: np.ndarray) -> _Attribution:
    """From every output's (rows x outputs x inputs) the one explained: the only one, or the class
    with the highest raw score (the predicted class)."""
    if values.shape[1] == 1:
        return _Attribution(values[:, 0], base[:, 0], raw[:, 0], None)
    chosen = np.argmax(raw, axis=1)
    rows = np.arange(len(raw))
    return _Attribution(values[rows, chosen], base[rows, chosen], raw[rows, chosen], chosen)


def _lightgbm(booster: Any, matrix: np.ndarray, limit: int | None = None) -> _Attribution:
    # A model trained with n_jobs=1 keeps to one thread here too (``limit``): its owner asked for it,
    # and a process that never starts OpenMP's thread pool can still fork safely.
    threads = 1 if len(matrix) < SMALL_BATCH else (limit or 0)
    outputs, width = booster.num_model_per_iteration(), matrix.shape[1] + 1
    contrib = np.asarray(booster.predict(matrix, pred_contrib=True, num_threads=threads), dtype=np.float64)
    contrib = contrib.reshape(len(matrix), outputs, width)
    raw = np.asarray(booster.predict(matrix, raw_score=True, num_threads=threads), dtype=np.float64)
    return _pick(contrib[:, :, :-1], contrib[:, :, -1], raw.reshape(len(matrix), outputs))


class _HistGradientBoosting:
    """TreeSHAP over a ``HistGradientBoosting*``'s trees (see :mod:`loopml.scoring.treeshap`)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.trees = hist_gradient_boosting_trees(model)  # [iteration][output]
        outputs = len(self.trees[0]) if self.trees else 1
        baseline = np.broadcast_to(np.ravel(model._baseline_prediction), (outputs,)).astype(np.float64)
        self.expected = baseline + np.array(
            [sum(expected_value(trees[c]) for trees in self.trees) for c in range(outputs)]
        )

    def __call__(self, matrix: np.ndarray) -> _Attribution:
        raw = np.asarray(self.model._raw_predict(matrix), dtype=np.float64).reshape(len(matrix), -1)
        chosen = np.argmax(raw, axis=1) if raw.shape[1] > 1 else np.zeros(len(matrix), dtype=np.int64)
        values = np.zeros(matrix.shape, dtype=np.float64)
        for output in np.unique(chosen):
            rows = chosen == output
            phi = np.zeros((int(rows.sum()), matrix.shape[1]))
            for trees in self.trees:
                tree_shap(trees[output], matrix[rows], phi)
            values[rows] = phi
        picked = raw[np.arange(len(raw)), chosen]
        return _Attribution(values, self.expected[chosen], picked, chosen if raw.shape[1] > 1 else None)


def _linear(model: Any, matrix: np.ndarray) -> _Attribution:
    from sklearn.base import is_classifier

    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))  # outputs x inputs
    intercept = np.broadcast_to(np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64)), len(coef))
    raw = model.decision_function(matrix) if is_classifier(model) else model.predict(matrix)
    raw = np.asarray(raw, dtype=np.float64).reshape(len(matrix), -1)
    values = matrix[:, None, :] * coef[None, :, :]
    return _pick(values, np.broadcast_to(intercept, (len(matrix), len(coef))), raw)


def _engine(estimator: Any, name: str) -> Callable[[np.ndarray], _Attribution]:
    """The contribution method for ``estimator``; an :class:`InputError` for one without any."""
    kind = type(estimator)
    if kind.__module__.startswith("lightgbm") and hasattr(estimator, "booster_"):
        booster = estimator.booster_
        jobs = getattr(estimator, "n_jobs", None)
        limit = jobs if isinstance(jobs, int) and jobs > 0 else None
        if not booster.params.get("linear_tree"):  # linear leaves have no TreeSHAP in LightGBM
            return lambda matrix: _lightgbm(booster, matrix, limit)
    elif kind.__name__.startswith("HistGradientBoosting") and hasattr(estimator, "_predictors"):
        try:
            return _HistGradientBoosting(estimator)
        except ValueError:
            pass  # categorical splits: refused below
    elif hasattr(estimator, "coef_") and hasattr(estimator, "intercept_"):
        return lambda matrix: _linear(estimator, matrix)
    raise InputError(
        f"model '{name}' cannot be explained: explanations cover LightGBM (without linear trees), "
        f"HistGradientBoosting (without categorical splits) and linear models; its estimator is "
        f"{kind.__name__}.",
        hint="Ask without explain, or train one of those models (train.model in loopml.yaml).",
    )


def _step_groups(step: Any, columns: list[str]) -> list[str]:
    """The user's column of each output column of one fitted ColumnTransformer step."""
    from sklearn.pipeline import Pipeline

    from loopml.features import DatetimeParts
    from loopml.features.relative import WindowRatios

    if isinstance(step, str):
        return [] if step == "drop" else list(columns)
    first = step.steps[0][1] if isinstance(step, Pipeline) else step
    names = [str(n) for n in step.get_feature_names_out(columns)]
    if isinstance(first, WindowRatios):  # relative window features: configured, kept by name
        return names
    owners = {f"{c}_{p}": c for c in columns for p in first.parts} if isinstance(first, DatetimeParts) else {}
    return [owners.get(n) or (n if n in columns else _prefix_owner(n, columns)) for n in names]


def _prefix_owner(name: str, columns: list[str]) -> str:
    """The longest column ``c`` with ``name`` starting ``c_`` (a derived column's source), or ``name``."""
    found = [c for c in columns if name.startswith(f"{c}_")]
    return max(found, key=len) if found else name


def feature_groups(pipeline: Any) -> list[str]:
    """For each column of the estimator's input matrix, the name it is explained under: the user's
    column it derives from, or its own name (window features, and anything not traced to one)."""
    from sklearn.compose import ColumnTransformer

    width = int(getattr(pipeline[-1], "n_features_in_", -1))
    preprocessor = pipeline[0] if len(pipeline.steps) == 2 else pipeline[:-1]
    groups: list[str] | None = None
    try:
        if isinstance(preprocessor, ColumnTransformer):
            groups = [
                group
                for _, step, columns in preprocessor.transformers_
                if len(columns) and all(isinstance(c, str) for c in columns)
                for group in _step_groups(step, list(columns))
            ]
        else:
            groups = [str(n) for n in preprocessor.get_feature_names_out()]
    except (AttributeError, ValueError, TypeError):
        groups = None
    if groups is None or len(groups) != width:
        return [f"feature_{i}" for i in range(max(width, 0))]
    return groups


class Explainer:
    """Explains one fitted ``features -> model`` pipeline's rows, given its input matrix.

    >>> import pandas as pd
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import Pipeline
    >>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    >>> pipe = Pipeline([("features", ColumnTransformer([("n", "passthrough", ["a", "b"])])),
    ...                  ("model", Ridge(alpha=0.0))]).fit(X, 2 * X["a"] - X["b"] + 1)
    >>> e = Explainer(pipe).explain(pipe[0].transform(X.tail(1)), k=1)[0]
    >>> round(e.base_value, 6), [(c.feature, round(c.contribution, 6)) for c in e.contributions]
    (1.0, [('a', 6.0), ('(rest)', 0.0)])
    """

    def __init__(self, pipeline: Any, name: str = "model") -> None:
        if not hasattr(pipeline, "steps") or len(pipeline.steps) < 2:
            raise InputError(f"model '{name}' cannot be explained: it is not a features -> model pipeline.")
        self.name = name
        self.groups = feature_groups(pipeline)
        self.names = list(dict.fromkeys(self.groups))
        index = {n: i for i, n in enumerate(self.names)}
        self._onehot = np.zeros((len(self.groups), len(self.names)))
        self._onehot[np.arange(len(self.groups)), [index[g] for g in self.groups]] = 1.0
        self._engine = _engine(pipeline[-1], name)
        classes = getattr(pipeline[-1], "classes_", None)
        self.classes = None if classes is None else [c.item() if hasattr(c, "item") else c for c in classes]

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, _Attribution]:
        """Each row's contribution per name of :attr:`names` (rows x names), and the attribution."""
        attribution = self._engine(dense(matrix))
        gap = np.abs(attribution.base + attribution.values.sum(axis=1) - attribution.raw)
        if not np.all(gap <= _TOLERANCE * np.maximum(1.0, np.abs(attribution.raw))):
            raise InputError(
                f"model '{self.name}' cannot be explained exactly: its contributions do not add up to "
                f"its raw score (off by up to {float(np.nanmax(gap)):.3g}); ask without explain."
            )
        return attribution.values @ self._onehot, attribution

    def explain(self, matrix: np.ndarray, k: int = DEFAULT_TOP_K) -> list[Explanation]:
        """One :class:`Explanation` per row of the model's input ``matrix``: the top ``k`` features."""
        check_top_k(k)
        if not len(matrix):
            return []
        grouped, attribution = self.contributions(matrix)
        order = np.argsort(-np.abs(grouped), axis=1, kind="stable")
        out = []
        for i, ranked in enumerate(order):
            entries = [Contribution(self.names[j], float(grouped[i, j])) for j in ranked[:k]]
            rest = ranked[k:]
            if len(rest):
                entries.append(Contribution(REST, float(grouped[i, rest].sum()), len(rest)))
            explained = self._explained_class(attribution, i)
            out.append(
                Explanation(float(attribution.raw[i]), float(attribution.base[i]), tuple(entries), explained)
            )
        return out

    def _explained_class(self, attribution: _Attribution, row: int) -> Any:
        if self.classes is None:
            return None
        return self.classes[-1] if attribution.chosen is None else self.classes[int(attribution.chosen[row])]

    def importance(self, matrix: np.ndarray) -> dict[str, float]:
        """Mean absolute contribution of each name over the rows of ``matrix``, largest first."""
        if not len(matrix):
            return dict.fromkeys(self.names, 0.0)
        grouped, _ = self.contributions(matrix)
        means = np.abs(grouped).mean(axis=0)
        return dict(sorted(zip(self.names, means.tolist(), strict=True), key=lambda p: -p[1]))

    def columns(self, explanations: Sequence[Explanation], k: int) -> dict[str, list[Any]]:
        """Batch output columns: ``explain_raw_score``, ``explain_base_value``, ``explain_class``
        (classifiers), then for each rank ``i`` from 1 ``explain_{i}_feature`` and
        ``explain_{i}_contribution``, then ``explain_rest`` (the rest's sum) when there is a rest."""
        ranks, rest = min(k, len(self.names)), len(self.names) > k
        out: dict[str, list[Any]] = {
            "explain_raw_score": [e.raw_score for e in explanations],
            "explain_base_value": [e.base_value for e in explanations],
        }
        if self.classes is not None:
            out["explain_class"] = [e.explained_class for e in explanations]
        for i in range(ranks):
            out[f"explain_{i + 1}_feature"] = [e.contributions[i].feature for e in explanations]
            out[f"explain_{i + 1}_contribution"] = [e.contributions[i].contribution for e in explanations]
        if rest:
            out["explain_rest"] = [e.contributions[-1].contribution for e in explanations]
        return out


def contribution_importance(
    pipeline: Any, frame: Any, *, max_rows: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Global importance: the mean absolute contribution of each feature (the user's columns) over
    the rows of ``frame`` (at most ``max_rows`` of them, drawn with ``seed``), largest first."""
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    explainer = Explainer(pipeline)
    return explainer.importance(dense(pipeline[:-1].transform(frame)))
