"""Ranking (recommendations): purchases as implicit feedback, judged on items new to each user.

The snapshot's purchase lines are split by time. Evaluation rows are the (user, item) pairs bought
after the cut by users who bought before it, for items they had not bought before: re-recommending
a user's history is trivially strong on repeat-purchase data and proves nothing, so what a user
bought before the cut is neither a candidate nor a hit. A model's output for a row is the rank it
gives the row's item for the row's user among the items the user has not bought (1 = first).

Metrics, per user then averaged over users (k is ``ranking.k``):

* ``ndcg``: DCG of the hits in the top k over the ideal DCG of ``min(relevant, k)`` hits;
* ``recall``: hits in the top k over ``min(relevant, k)`` (so a perfect list scores 1);
* ``hit_rate``: share of users with at least one hit in the top k;
* ``coverage`` (computed by the trainer): share of the catalogue in at least one user's top k.

Served lists are monitored the same way: a logged list's label is how many of its items the user
bought later, and :func:`metrics` without user ids gives ``hit_rate`` and ``hits_per_list``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.enums import TaskKind
from loopml.tasks.base import Task
from loopml.tasks.ranking_base import (
    CANDIDATES,
    K_COLUMN,
    USER_COLUMN,
    check_columns,
    labels,
    make_candidate,
    metrics,
    per_user,
    ranking_metrics,
)
from loopml.tasks.ranking_train import train_ranking
from loopml.tasks.recommenders import PopularityRecommender, Recommender

__all__ = [
    "CANDIDATES",
    "K_COLUMN",
    "TASK",
    "USER_COLUMN",
    "check_columns",
    "make_candidate",
    "metrics",
    "per_user",
    "ranking_metrics",
]


def predict(model: Any, X: Any, **kwargs: Any) -> np.ndarray:
    """Rank of each row's item for the row's user (1 = first; NaN where already bought)."""
    values: np.ndarray = model.predict(X)
    return np.asarray(values, dtype=np.float64)


def outputs(scores: np.ndarray, *, classes: Any = None, threshold: float = 0.5) -> list[dict[str, Any]]:
    """``score`` and ``rank`` (None: the user already bought the item, or it is not in the catalogue)."""
    return [{"score": float(v), "rank": None if np.isnan(v) else int(v)} for v in scores]


def output_schema(classes: Any = None) -> dict[str, Any]:
    """The JSON Schema of :func:`outputs`' rows."""
    rank = {"type": ["integer", "null"], "minimum": 1, "description": "1 = first; null: already bought."}
    return {
        "properties": {"score": {"type": ["number", "null"]}, "rank": rank},
        "required": ["score", "rank"],
    }


def _trainer(frame: pd.DataFrame, settings: Any) -> Any:
    return train_ranking(frame, settings)


def _baseline() -> Recommender:
    return PopularityRecommender()


def _unseen(holdout: pd.DataFrame, champion_metrics: dict[str, Any]) -> np.ndarray:
    """Evaluation rows bought after everything the champion was trained on (its refit saw the rest)."""
    until = champion_metrics.get("trained_until")
    if until is None or "time" not in holdout.columns:
        return np.zeros(len(holdout), dtype=bool)
    return (pd.to_datetime(holdout["time"]) > pd.Timestamp(until)).to_numpy()


TASK = Task(
    name=TaskKind.RANKING,
    primary="ndcg",
    greater_is_better=True,
    candidates=CANDIDATES,
    labels=labels,
    metrics=metrics,
    make_candidate=make_candidate,
    make_baseline=_baseline,
    predict=predict,
    outputs=outputs,
    output_schema=output_schema,
    profile_prediction=None,
    trainer=_trainer,
    metric_inputs=(USER_COLUMN, K_COLUMN),
    unseen=_unseen,
)
