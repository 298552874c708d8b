"""Ranking's building blocks: candidates, metrics over ranks per user, and column checks (the task
itself is :mod:`loopml.tasks.ranking`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import ConfigError, DataError
from loopml.tasks.recommenders import (
    ALSRecommender,
    CooccurrenceRecommender,
    PopularityRecommender,
    Recommender,
)

__all__ = [
    "CANDIDATES",
    "K_COLUMN",
    "USER_COLUMN",
    "check_columns",
    "labels",
    "make_candidate",
    "metrics",
    "per_user",
    "ranking_metrics",
]

CANDIDATES = ("auto", "als", "cooccurrence", "popularity")
USER_COLUMN = "ranking_user"  # holdout column: the user key each evaluation row belongs to
K_COLUMN = "ranking_k"  # holdout column: the list length the metrics use
_MODELS: dict[str, type[Recommender]] = {
    "als": ALSRecommender,
    "cooccurrence": CooccurrenceRecommender,
    "popularity": PopularityRecommender,
}


def _discounts(n: int) -> np.ndarray:
    return np.asarray(1.0 / np.log2(np.arange(2, n + 2)))


def ranking_metrics(ranks: np.ndarray, users: np.ndarray, k: int) -> dict[str, float]:
    """NDCG@k, recall@k and hit rate@k from each relevant row's rank (NaN: not ranked, a miss).

    Examples
    --------
    One user with two relevant items ranked 1st and 4th, another with one ranked 20th (k = 3):
    user a has DCG 1 against an ideal 1 + 1/log2(3); user b has nothing in the top 3.

    >>> m = ranking_metrics(np.array([1.0, 4.0, 20.0]), np.array(["a", "a", "b"]), k=3)
    >>> round(m["ndcg"], 4), m["recall"], m["hit_rate"]
    (0.3066, 0.25, 0.5)
    """
    if len(ranks) == 0:
        return {"ndcg": float("nan"), "recall": float("nan"), "hit_rate": float("nan"), "users": 0.0}
    ndcg, recall, hits = per_user(ranks, users, k)
    return {
        "ndcg": float(np.mean(ndcg)),
        "recall": float(np.mean(recall)),
        "hit_rate": float(np.mean(hits > 0)),
        "users": float(len(ndcg)),
    }


def per_user(ranks: np.ndarray, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's NDCG@k, recall@k and number of hits (users in order of first appearance)."""
    rank = np.asarray(ranks, dtype=float)
    hit = np.nan_to_num(rank, nan=np.inf) <= k
    gain = np.where(hit, 1.0 / np.log2(np.where(hit, rank, 1.0) + 1.0), 0.0)
    _, first, which = np.unique(np.asarray(users, dtype=str), return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # np.unique sorts; report in order of appearance
    dcg = np.bincount(which, weights=gain)[order]
    hits = np.bincount(which, weights=hit.astype(float))[order]
    capped = np.minimum(np.bincount(which)[order], k)
    ideal = np.cumsum(_discounts(k))[capped - 1]
    return dcg / ideal, hits / capped, hits


def metrics(y_true: np.ndarray, output: np.ndarray, **inputs: Any) -> dict[str, float]:
    """The task's metrics: ranking metrics when the rows carry user ids (``ranking_user``), else
    the served-list view, where ``y_true`` is how many of a list's items the user bought later."""
    users = inputs.get(USER_COLUMN)
    if users is not None and len(users) and not pd.isna(np.asarray(users, dtype=object)).all():
        lengths = inputs.get(K_COLUMN)
        k = int(np.asarray(lengths)[0]) if lengths is not None and len(lengths) else 10
        return ranking_metrics(np.asarray(output, dtype=float), np.asarray(users, dtype=object), k)
    hits = np.asarray(y_true, dtype=float)
    if len(hits) == 0:
        return {"hit_rate": float("nan"), "hits_per_list": float("nan")}
    return {"hit_rate": float(np.mean(hits > 0)), "hits_per_list": float(np.mean(hits))}


def labels(y: pd.Series) -> np.ndarray:
    """Implicit feedback: every purchase line is a positive (the target column's value is not used)."""
    return np.ones(len(y), dtype=float)


def make_candidate(name: str, params: dict[str, Any], seed: int) -> Recommender:
    """An unfitted recommender ``name`` (``params`` must name ``user`` and ``item`` columns)."""
    if name not in _MODELS:
        raise ConfigError(f"unknown ranking model '{name}'; valid: {', '.join(_MODELS)}.")
    extra = {"random_state": seed} if name == "als" else {}
    try:
        return _MODELS[name](**{**extra, **params})
    except TypeError:
        import inspect

        valid = [
            p for p in inspect.signature(_MODELS[name]).parameters if p not in ("user", "item", "segment")
        ]
        raise ConfigError(
            f"train.params {sorted(params)} do not all fit the ranking model '{name}'; "
            f"valid: {', '.join(valid)}."
        ) from None


def check_columns(frame: pd.DataFrame, columns: dict[str, str | None]) -> None:
    """A :class:`ConfigError` naming the ``ranking.<key>`` whose column is not in the data."""
    from loopml.errors import did_you_mean

    for key, column in columns.items():
        if column is not None and column not in frame.columns:
            raise ConfigError(
                f"ranking.{key} '{column}' is not a column of the data; {did_you_mean(column, frame.columns)}"
            )
    if frame.empty:
        raise DataError("no purchase lines to learn recommendations from.")
