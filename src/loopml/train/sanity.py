"""Sanity warnings at training time: the mistakes in a first project file that a model quietly
learns around, each found cheaply and said with the setting that fixes it.

* ``id_like``: a column with a different value in every row used as a feature (an id; the model
  can only memorise it): set ``id_column`` or add it to ``features.drop``.
* ``constant``: a column with one value (or none) in every training row: it teaches nothing.
* ``leak``: a single feature that alone reaches holdout ROC AUC >= 0.98 (binary) or R² >= 0.98
  (regression), one standard error down (a strong feature on a small holdout is no leak), judged by
  a small tree on that feature only: likely a value known only after the outcome.
* ``imbalanced``: a binary target with under 5% positives while a missed positive and a false alarm
  cost the same (``train.costs``): the cost-minimising threshold then flags few rows, if any.

The warnings are recorded with the version (``metrics["warnings"]``), listed in the training report
and printed by ``loopml train``; they never stop training.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Settings
from loopml.features import FeatureColumns
from loopml.tasks import Task

__all__ = [
    "LEAK_SCORE",
    "MIN_POSITIVE_RATE",
    "SanityWarning",
    "WarningKind",
    "sanity_warnings",
]

LEAK_SCORE = 0.98  # one feature alone reaching this holdout ROC AUC or R² is likely a leak
MIN_POSITIVE_RATE = 0.05  # fewer positives than this, with 1:1 costs: the costs are probably wrong
_SAMPLE = 20_000  # rows of each side the leak check looks at
_MIN_ROWS_FOR_ID = 100  # fewer rows than this are unique per row by chance too often


class WarningKind(StrEnum):
    """What a sanity warning is about."""

    ID_LIKE = "id_like"
    CONSTANT = "constant"
    LEAK = "leak"
    IMBALANCED = "imbalanced"


@dataclass(frozen=True)
class SanityWarning:
    """One warning: its ``kind``, the ``column`` (or feature) it is about, what was found
    (``detail``) and the ``setting`` of loopml.yaml that deals with it."""

    kind: WarningKind
    column: str | None
    detail: str
    setting: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "column": self.column, "detail": self.detail, "setting": self.setting}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SanityWarning:
        return cls(WarningKind(data["kind"]), data.get("column"), data["detail"], data["setting"])

    def __str__(self) -> str:
        where = f"'{self.column}' " if self.column else ""
        return f"{where}{self.detail} (set {self.setting})"


def sanity_warnings(
    task: Task,
    settings: Settings,
    frame: pd.DataFrame,
    columns: FeatureColumns,
    train: np.ndarray,
    holdout: np.ndarray,
    y: np.ndarray,
) -> list[SanityWarning]:
    """Every warning for a model fitted on the ``train`` rows of ``frame`` (with window features
    added) and judged on the ``holdout`` rows."""
    raw = [*columns.numeric, *columns.categorical, *columns.high_cardinality, *columns.datetime]
    found = [*_id_like(frame, raw, columns.datetime), *_constant(settings, frame.iloc[train], raw)]
    found += _leaks(task, frame, columns, train, holdout, y, settings.train.seed)
    found += _imbalanced(task, settings, y[train])
    return found


def _id_like(frame: pd.DataFrame, raw: list[str], datetimes: tuple[str, ...]) -> list[SanityWarning]:
    """Text or whole-number columns (not times, not measurements) unique per row."""
    n = len(frame)
    if n < _MIN_ROWS_FOR_ID:
        return []
    out = []
    for column in raw:
        values = frame[column]
        if column in datetimes or values.isna().any() or not _discrete(values):
            continue
        if values.nunique() == n:
            out.append(
                SanityWarning(
                    WarningKind.ID_LIKE,
                    column,
                    f"has a different value in each of the {n:,} rows: an id, not a feature (the model "
                    "can only memorise it)",
                    "id_column, or add it to features.drop",
                )
            )
    return out


def _discrete(values: pd.Series) -> bool:
    """Whether a column holds text, categories or whole numbers (an id's kinds of values)."""
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_integer_dtype(values):
        return True
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(dtype=float)
        return bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))
    return True  # text, categories, objects


def _constant(settings: Settings, rows: pd.DataFrame, raw: list[str]) -> list[SanityWarning]:
    """Columns with at most one value over the training rows (sequence columns drop their own)."""
    sequences = settings.features.sequences
    handled = set(sequences.columns or []) if sequences is not None else set()
    out = []
    for column in raw:
        if column in handled or (sequences is not None and not sequences.columns):
            continue
        values = rows[column].dropna()
        distinct = values.nunique()
        if distinct > 1:
            continue
        what = f"one value ({values.iloc[0]!r})" if distinct else "no value"
        out.append(
            SanityWarning(
                WarningKind.CONSTANT,
                column,
                f"has {what} in every training row: it teaches the model nothing",
                "features.drop",
            )
        )
    return out


def _imbalanced(task: Task, settings: Settings, y_train: np.ndarray) -> list[SanityWarning]:
    costs = settings.train.costs
    if not task.positive_class or not len(y_train) or costs.false_negative != costs.false_positive:
        return []
    rate = float(np.mean(y_train))
    if rate >= MIN_POSITIVE_RATE:
        return []
    return [
        SanityWarning(
            WarningKind.IMBALANCED,
            settings.target,
            f"only {rate:.1%} of the training rows are positive, and a missed positive costs the same "
            "as a false alarm: the cost-minimising threshold flags few rows, if any; say what each "
            "mistake costs",
            "train.costs.false_negative and train.costs.false_positive",
        )
    ]


def _leaks(
    task: Task,
    frame: pd.DataFrame,
    columns: FeatureColumns,
    train: np.ndarray,
    holdout: np.ndarray,
    y: np.ndarray,
    seed: int,
) -> list[SanityWarning]:
    """Input columns and window features that alone score >= :data:`LEAK_SCORE` on (a sample of)
    the holdout. Judged on the columns as the user knows them (text as codes learnt on the training
    rows), not on derived statistics, which are computed point-in-time from those columns."""
    if not (task.positive_class or task.numeric_labels) or not len(holdout):
        return []
    rng = np.random.default_rng(seed)
    fit_rows, judge_rows = (_sample(rows, rng) for rows in (train, holdout))
    y_fit, y_judge = y[fit_rows].astype(float), y[judge_rows].astype(float)
    if len(np.unique(y_judge)) < 2:
        return []
    out = []
    for name in [*columns.numeric, *columns.windows, *columns.categorical, *columns.high_cardinality]:
        a, b = _numbers(frame[name], fit_rows, judge_rows)
        score = _alone(task.positive_class, a, y_fit, b, y_judge)
        if score is not None and score - _standard_error(task.positive_class, score, y_judge) >= LEAK_SCORE:
            out.append(_leak_warning(task.positive_class, name, score, columns))
    return out


def _standard_error(binary: bool, score: float, y: np.ndarray) -> float:
    """The standard error of a holdout ROC AUC (Hanley and McNeil, 1982) or R² (``2 r (1 - r²) / √n``):
    a leak is claimed only when the score stays at :data:`LEAK_SCORE` one standard error down, so a
    strong feature on a small holdout (AUC 0.987 on 36 rows of a clean data set) is not called one."""
    if not binary:
        return float(2 * np.sqrt(max(score, 0.0)) * (1 - score) / np.sqrt(len(y)))
    n1, n2 = float((y == 1).sum()), float((y != 1).sum())
    q1, q2 = score / (2 - score), 2 * score**2 / (1 + score)
    variance = (score * (1 - score) + (n1 - 1) * (q1 - score**2) + (n2 - 1) * (q2 - score**2)) / (n1 * n2)
    return float(np.sqrt(max(variance, 0.0)))


def _numbers(
    values: pd.Series, fit_rows: np.ndarray, judge_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A column's values on both sides as numbers: text and categories as the codes of the values
    seen on the fitting rows (others -1), missing values as NaN."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return (values.iloc[fit_rows].to_numpy(dtype=float), values.iloc[judge_rows].to_numpy(dtype=float))
    known = pd.Index(values.iloc[fit_rows].dropna().unique())
    codes = [np.asarray(known.get_indexer(values.iloc[rows]), dtype=float) for rows in (fit_rows, judge_rows)]
    for side, rows in zip(codes, (fit_rows, judge_rows), strict=True):
        side[values.iloc[rows].isna().to_numpy()] = np.nan
    return codes[0], codes[1]


def _sample(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, _SAMPLE, replace=False)) if len(rows) > _SAMPLE else rows


def _alone(
    binary: bool, a: np.ndarray, y_fit: np.ndarray, b: np.ndarray, y_judge: np.ndarray
) -> float | None:
    """One feature's holdout ROC AUC (binary) or R² (regression) from a small tree fitted on it alone."""
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if len(np.unique(a[~np.isnan(a)])) < 2:
        return None
    kind = DecisionTreeClassifier if binary else DecisionTreeRegressor
    tree = kind(max_leaf_nodes=32, min_samples_leaf=max(5, len(a) // 1000), random_state=0)
    tree.fit(a.reshape(-1, 1), y_fit)
    if binary:
        return float(roc_auc_score(y_judge, tree.predict_proba(b.reshape(-1, 1))[:, 1]))
    return float(r2_score(y_judge, tree.predict(b.reshape(-1, 1))))


def _leak_warning(binary: bool, name: str, score: float, columns: FeatureColumns) -> SanityWarning:
    metric = "ROC AUC" if binary else "R²"
    if name in columns.windows:
        setting = "features.windows (a label_delay, or drop the window)"
    else:
        setting = "features.drop"
    return SanityWarning(
        WarningKind.LEAK,
        name,
        f"alone reaches holdout {metric} {score:.3f}: a likely leak (a value known only after the "
        "outcome, or the target in another form)",
        setting,
    )
