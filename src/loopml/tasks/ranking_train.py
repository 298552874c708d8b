"""The ranking task's trainer: time split, every candidate judged on new items, the choice, the refit.

1. The snapshot's purchase lines are cut by time (``train.holdout_fraction`` of lines after the cut);
   the training part is cut again (``train.validation_fraction``) for choosing a model.
2. Each candidate (``ranking.candidates``) is fitted on the lines before a cut and ranks, for every
   user who bought before the cut, the items that user had not bought; the rows after the cut that
   are new items of those users are the hits. ``train.model: auto`` keeps the candidate with the
   best validation NDCG (never the holdout's); any other name forces that model.
3. The holdout figures of every candidate are reported; the popularity model is the baseline.
4. The chosen model is refitted on every line, so that serving knows each user's latest purchases
   and this season's items; ``trained_until`` records the last line it saw, and a later challenger
   is compared with it only on rows bought after that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from loopml.config import RankingConfig, Settings
from loopml.errors import ConfigError
from loopml.tasks.base import CustomFit, time_split
from loopml.tasks.ranking_base import (
    CANDIDATES,
    K_COLUMN,
    USER_COLUMN,
    check_columns,
    make_candidate,
    per_user,
    ranking_metrics,
)
from loopml.tasks.recommenders import Recommender, user_keys

__all__ = ["EvalSet", "evaluation_set", "train_ranking", "wrap"]


@dataclass(frozen=True)
class EvalSet:
    """Evaluation rows (one per user and new item bought after the cut) and each user's history."""

    rows: pd.DataFrame  # user column, item column, "time", USER_COLUMN
    histories: dict[str, list[str]]


def ranking_config(settings: Settings) -> RankingConfig:
    """The ``ranking:`` section, which a ranking project must have."""
    if settings.ranking is None:
        raise ConfigError(
            "task 'ranking' needs a 'ranking:' section naming the user and item columns, "
            "e.g. ranking: {user: CustomerID, item: StockCode}."
        )
    return settings.ranking


def evaluation_set(before: pd.DataFrame, after: pd.DataFrame, cfg: RankingConfig, event_time: str) -> EvalSet:
    """Rows bought ``after`` the cut by users known ``before`` it, for items new to them."""
    keys_before = user_keys(before[cfg.user])
    grouped = before[cfg.item].astype(str).groupby(keys_before)
    histories = {str(u): sorted(set(items)) for u, items in grouped}
    later = pd.DataFrame(
        {
            cfg.user: after[cfg.user].to_numpy(),
            cfg.item: after[cfg.item].astype(str).to_numpy(),
            "time": pd.to_datetime(after[event_time]).to_numpy(),
            USER_COLUMN: user_keys(after[cfg.user]),
        }
    )
    known = later[USER_COLUMN].isin(histories)
    later = later[known].sort_values("time").drop_duplicates([USER_COLUMN, cfg.item])
    bought = {(u, i) for u, items in histories.items() for i in items}
    new = [(u, i) not in bought for u, i in zip(later[USER_COLUMN], later[cfg.item], strict=True)]
    return EvalSet(later[new].reset_index(drop=True), histories)


def judge(model: Recommender, data: EvalSet, k: int) -> tuple[dict[str, float], np.ndarray]:
    """A fitted model's metrics on the evaluation rows, and its rank for each row."""
    users = list(dict.fromkeys(data.rows[USER_COLUMN]))
    position = {u: n for n, u in enumerate(users)}
    row_user = data.rows[USER_COLUMN].map(position).to_numpy()
    row_item = np.array([model.item_index_.get(i, -1) for i in data.rows[model.item].astype(str)])
    ranks = np.full(len(data.rows), np.nan)
    shown = np.zeros(len(model.items_), dtype=bool)
    for start in range(0, len(users), 512):
        matrix = model.rank_matrix([(u, None) for u in users[start : start + 512]])
        shown |= (np.nan_to_num(matrix, nan=np.inf) <= k).any(axis=0)
        rows = np.flatnonzero((row_user >= start) & (row_user < start + 512) & (row_item >= 0))
        ranks[rows] = matrix[row_user[rows] - start, row_item[rows]]
    found = ranking_metrics(ranks, data.rows[USER_COLUMN].to_numpy(), k)
    found["coverage"] = float(shown.mean()) if users else float("nan")
    found["k"] = float(k)
    return found, ranks


def _params(name: str, cfg: RankingConfig, settings: Settings) -> dict[str, Any]:
    # train.params: the forced model's parameters, or per candidate ({als: {factors: 32}}).
    params = settings.train.params
    own = (
        params[name] if isinstance(params.get(name), dict) else params if name == settings.train.model else {}
    )
    return {"user": cfg.user, "item": cfg.item, "segment": cfg.segment, **own}


def _fit(name: str, lines: pd.DataFrame, cfg: RankingConfig, settings: Settings) -> Recommender:
    model = make_candidate(name, _params(name, cfg, settings), settings.train.seed)
    return model.fit(lines)


def wrap(model: Recommender) -> Pipeline:
    """The registry's shape: a pipeline whose last step is the model (no preprocessing)."""
    return Pipeline([("features", "passthrough"), ("model", model)])


def _split(lines: pd.DataFrame, event_time: str, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    before, after = time_split(lines, event_time, fraction)
    return lines.iloc[before], lines.iloc[after]


def _choose(
    cfg: RankingConfig, settings: Settings, train: pd.DataFrame, event_time: str
) -> tuple[str, dict[str, float]]:
    """The model to register: ``train.model``, or with ``auto`` the best validation NDCG."""
    wanted = settings.train.model
    if wanted not in CANDIDATES:
        raise ConfigError(
            f"train.model '{wanted}' is not a candidate for task 'ranking'; valid: {', '.join(CANDIDATES)}."
        )
    names = list(dict.fromkeys(cfg.candidates))
    if wanted != "auto":
        return wanted, {}
    fit_part, valid_part = _split(train, event_time, settings.train.validation_fraction)
    data = evaluation_set(fit_part, valid_part, cfg, event_time)
    scores = {n: judge(_fit(n, fit_part, cfg, settings), data, cfg.k)[0]["ndcg"] for n in names}
    best = max(names, key=lambda n: (np.nan_to_num(scores[n], nan=-1.0), -names.index(n)))
    return str(best), {str(n): v for n, v in scores.items()}


def _bootstrap(ranks: np.ndarray, users: np.ndarray, k: int, n: int, seed: int) -> dict[str, list[float]]:
    """Percentile interval of NDCG over users resampled with replacement."""
    if n == 0 or len(ranks) == 0:
        return {}
    ndcgs = per_user(ranks, users, k)[0]
    rng = np.random.default_rng(seed)
    draws = [float(np.mean(ndcgs[rng.integers(0, len(ndcgs), len(ndcgs))])) for _ in range(n)]
    return {"ndcg": [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]}


def train_ranking(frame: pd.DataFrame, settings: Settings) -> CustomFit:
    """Judge every candidate on items new to each user after the time cut; refit the chosen one."""
    cfg, event_time = ranking_config(settings), settings.event_time
    if event_time is None:
        raise ConfigError("task 'ranking' splits by time: set event_time in loopml.yaml.")
    check_columns(
        frame, {"user": cfg.user, "item": cfg.item, "segment": cfg.segment, "event_time": event_time}
    )
    lines = frame[frame[cfg.user].notna() & frame[cfg.item].notna()].reset_index(drop=True)
    started = time.perf_counter()
    train, holdout = _split(lines, event_time, settings.train.holdout_fraction)
    chosen, validation = _choose(cfg, settings, train, event_time)
    data = evaluation_set(train, holdout, cfg, event_time)
    names = list(dict.fromkeys([*cfg.candidates, chosen, "popularity"]))
    judged = {n: judge(_fit(n, train, cfg, settings), data, cfg.k) for n in names}
    final = _fit(chosen, lines, cfg, settings)
    ranks = judged[chosen][1]
    rows = data.rows.assign(**{K_COLUMN: cfg.k})
    metrics: dict[str, Any] = {
        "holdout": judged[chosen][0],
        "baseline": judged["popularity"][0],
        "candidates": {n: m for n, (m, _) in judged.items()},
        "validation": {"ndcg": validation} if validation else {},
        "chosen": chosen,
        "holdout_ci": _bootstrap(ranks, rows[USER_COLUMN].to_numpy(), cfg.k, settings.train.bootstrap, 0),
        "rows_train": len(train),
        "rows_holdout": len(holdout),
        "evaluation_rows": len(rows),
        "holdout_start": str(pd.to_datetime(holdout[event_time]).min()),
        "trained_until": str(pd.to_datetime(lines[event_time]).max()),
        "catalogue": len(final.items_),
        "users": len(final.users_),
        "fit_seconds": round(time.perf_counter() - started, 3),
    }
    inputs = tuple(c for c in (cfg.user, cfg.item, cfg.segment) if c)
    return CustomFit(
        pipeline=wrap(final),
        metrics=metrics,
        params={"model": chosen, **_params(chosen, cfg, settings)},
        holdout=rows,
        holdout_output=ranks,
        holdout_labels=np.ones(len(rows)),
        features=(),
        inputs=inputs,
        importance={},
    )
