"""Recommenders for the ranking task: popularity, item-item co-occurrence and implicit-feedback ALS.

Each is a scikit-learn-style estimator fitted on a frame of purchases (one row per line: user, item,
time). A fitted model keeps its item catalogue, every user's purchase history (to leave out what a
user already bought, and to build the user's profile at request time) and the popularity counts
(overall and per segment, e.g. country) that serve users it has never seen (cold start).

User profiles are computed from the history when asked ("fold-in"), never stored: a purchase made
after training changes the recommendations as soon as it is part of the history handed in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from loopml.errors import DataError

__all__ = [
    "ALSRecommender",
    "CooccurrenceRecommender",
    "PopularityRecommender",
    "Recommendation",
    "Recommender",
    "user_key",
]


_INTEGRAL = re.compile(r"^(-?\d+)\.0+$")


def user_key(value: Any) -> str:
    """A user id as the models key it: integral numbers without ``.0`` (``17850.0`` -> ``'17850'``).

    Examples
    --------
    >>> user_key(17850.0), user_key("17850.0"), user_key(" c-7 ")
    ('17850', '17850', 'c-7')
    """
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return _INTEGRAL.sub(r"\1", text)


def user_keys(values: pd.Series) -> np.ndarray:
    """:func:`user_key` of every value, vectorised for the common cases (integral floats, text)."""
    array = values.to_numpy()
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64).astype(str).astype(object)
    if array.dtype.kind in "iu":
        return array.astype(str).astype(object)
    return values.map(user_key).to_numpy(dtype=object)


def _codes(values: np.ndarray, categories: list[str]) -> np.ndarray:
    """Position of each value in the sorted ``categories`` (-1 when absent)."""
    return np.asarray(pd.Index(categories).get_indexer(pd.Index(values)), dtype=np.int64)


@dataclass(frozen=True)
class Recommendation:
    """Top items for one user, best first, and where they came from (the model or a fallback)."""

    user: str
    items: list[str]
    scores: list[float]
    source: str
    known: bool


class Recommender(BaseEstimator):
    """What every recommender shares: catalogue, histories, popularity, exclusion and cold start.

    Subclasses implement :meth:`_fit_model` and :meth:`_score` (a users x items score matrix from
    a users x items history matrix).
    """

    name: ClassVar[str] = "recommender"
    user: str
    item: str
    segment: str | None

    def fit(self, X: pd.DataFrame, y: Any = None) -> Recommender:
        """Learn from purchase lines: columns ``user``, ``item`` (and ``segment`` when set)."""
        lines = self._lines(X)
        self.items_ = sorted(lines["item"].unique().tolist())
        self.users_ = sorted(lines["user"].unique().tolist())
        self.item_index_ = {item: i for i, item in enumerate(self.items_)}
        self.user_index_ = {user: i for i, user in enumerate(self.users_)}
        matrix = self._matrix(lines)
        self.history_indptr_, self.history_indices_ = matrix.indptr.copy(), matrix.indices.copy()
        buyers = np.asarray((matrix > 0).sum(axis=0)).ravel().astype(float)
        self.popularity_ = buyers
        self.segment_popularity_ = self._segment_popularity(lines)
        self._fit_model(matrix)
        return self

    def _lines(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in (self.user, self.item) if c not in X.columns]
        if missing:
            raise DataError(f"purchase lines lack column(s) {', '.join(missing)}.")
        keep = X[X[self.user].notna() & X[self.item].notna()]
        if keep.empty:
            raise DataError("no purchase lines with both a user and an item to learn from.")
        lines = pd.DataFrame(
            {"user": user_keys(keep[self.user]), "item": keep[self.item].astype(str).to_numpy()}
        )
        if self.segment and self.segment in keep.columns:
            lines["segment"] = keep[self.segment].astype(str)
        return lines

    def _matrix(self, lines: pd.DataFrame) -> sp.csr_matrix:
        """Users x items: how many lines of each item each user bought."""
        rows = _codes(lines["user"].to_numpy(), self.users_)
        cols = _codes(lines["item"].to_numpy(), self.items_)
        shape = (len(self.users_), len(self.items_))
        matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)
        matrix.sum_duplicates()
        return matrix

    def _segment_popularity(self, lines: pd.DataFrame) -> dict[str, list[int]]:
        """Per segment value with enough buyers: item indices by distinct buyers, best first."""
        if "segment" not in lines.columns:
            return {}
        pairs = lines.drop_duplicates(["user", "item", "segment"])
        found: dict[str, list[int]] = {}
        for value, rows in pairs.groupby("segment"):
            if rows["user"].nunique() >= 5:
                counts = rows["item"].value_counts().head(200)
                found[str(value)] = [self.item_index_[i] for i in counts.index]
        return found

    def _fit_model(self, matrix: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _score(self, histories: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "items_"):
            raise DataError(f"this {type(self).__name__} is not fitted yet; call fit() first.")

    def history(self, user: Any) -> list[str]:
        """Items the user bought in the training data (empty for an unknown user)."""
        self._check_fitted()
        row = self.user_index_.get(user_key(user))
        if row is None:
            return []
        start, end = self.history_indptr_[row], self.history_indptr_[row + 1]
        return [self.items_[i] for i in self.history_indices_[start:end]]

    def history_matrix(self, histories: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """Users x items 0/1 matrix of the given item lists (items outside the catalogue ignored)."""
        self._check_fitted()
        rows, cols = [], []
        for r, items in enumerate(histories):
            known = {self.item_index_[i] for i in items if i in self.item_index_}
            rows += [r] * len(known)
            cols += sorted(known)
        data = np.ones(len(rows))
        return sp.csr_matrix((data, (rows, cols)), shape=(len(histories), len(self.items_)))

    def score_histories(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        """Scores of every catalogue item (columns, in ``items_`` order) for each history (rows)."""
        return self._score(self.history_matrix(histories))

    def top_k(
        self, histories: Sequence[Sequence[str]], k: int, exclude: Sequence[Sequence[str]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of the ``k`` best items per history, leaving out the history itself
        (and ``exclude``): what a user already bought is never recommended."""
        scores = np.array(self.score_histories(histories), dtype=float)
        seen = self.history_matrix(histories if exclude is None else _union(histories, exclude))
        scores[seen.nonzero()] = -np.inf
        k = min(k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return top, np.take_along_axis(scores, top, axis=1)

    def recommend(
        self, user: Any, k: int = 10, *, segment: str | None = None, exclude: Sequence[str] = ()
    ) -> Recommendation:
        """Top ``k`` items ``user`` has not bought (nor in ``exclude``); a user with no history gets
        the popular items of ``segment`` (when the model knows it) or of everyone."""
        key = user_key(user)
        history = self.history(key)
        if not history:
            return self.cold_start(key, k, segment, exclude)
        top, scores = self.top_k([history], k, exclude=[list(exclude)])
        found = [(self.items_[i], float(s)) for i, s in zip(top[0], scores[0], strict=True) if np.isfinite(s)]
        return Recommendation(key, [i for i, _ in found], [s for _, s in found], self.name, True)

    def cold_start(
        self, user: str, k: int, segment: str | None = None, exclude: Sequence[str] = ()
    ) -> Recommendation:
        """The most popular items (in the user's segment when it has enough buyers)."""
        self._check_fitted()
        scores = self._popularity_scores(segment)
        scores[[self.item_index_[i] for i in exclude if i in self.item_index_]] = -np.inf
        ranked = [i for i in np.argsort(-scores, kind="stable")[:k] if np.isfinite(scores[i])]
        source = "popularity" + (f":{segment}" if segment in self.segment_popularity_ else "")
        values = [float(scores[i]) for i in ranked]
        return Recommendation(user, [self.items_[i] for i in ranked], values, source, False)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Rank (1 = first) this model gives each row's item for the row's user, among the items the
        user has not bought; NaN for an item already bought or outside the catalogue. Unknown users
        are ranked by popularity (their segment's, when the row carries one the model knows)."""
        self._check_fitted()
        users = user_keys(X[self.user]).tolist()
        segments = X[self.segment].astype(str).tolist() if self.segment in X.columns else [None] * len(X)
        columns = _codes(X[self.item].astype(str).to_numpy(), self.items_)
        out = np.full(len(X), np.nan)
        distinct = list(dict.fromkeys(zip(users, segments, strict=True)))
        for start in range(0, len(distinct), _CHUNK):
            chunk = distinct[start : start + _CHUNK]
            ranks = self.rank_matrix(chunk)
            where = {pair: r for r, pair in enumerate(chunk)}
            for n, pair in enumerate(zip(users, segments, strict=True)):
                r = where.get(pair)
                if r is not None and columns[n] >= 0:
                    out[n] = ranks[r, columns[n]]
        return out

    def rank_matrix(self, users: Sequence[tuple[str, str | None]]) -> np.ndarray:
        """Users x items: each item's rank (1 = first) for each (user, segment); NaN where bought."""
        histories = [self.history(u) for u, _ in users]
        scores = np.array(self.score_histories(histories), dtype=float)
        for r, (_user, segment) in enumerate(users):
            if not histories[r]:
                scores[r] = self._popularity_scores(segment)
        seen = self.history_matrix(histories).nonzero()
        scores[seen] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")
        ranks = np.empty_like(scores)
        np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1, dtype=float)[None, :], axis=1)
        ranks[seen] = np.nan
        return ranks

    def _popularity_scores(self, segment: str | None) -> np.ndarray:
        scores = np.array(self.popularity_ / (self.popularity_.max() or 1.0), dtype=float)
        ranked = self.segment_popularity_.get(segment or "", [])
        if ranked:  # the segment's best sellers first (scores in (1, 2]), then everyone's
            scores[ranked] = 1.0 + np.linspace(1.0, 0.0, len(ranked), endpoint=False)
        return scores


_CHUNK = 512  # users scored at a time: 512 x catalogue floats


def _union(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> list[list[str]]:
    return [[*x, *y] for x, y in zip(a, b, strict=True)]


class PopularityRecommender(Recommender):
    """Every user gets the items bought by the most distinct users (the baseline)."""

    name: ClassVar[str] = "popularity"

    def __init__(self, user: str = "user", item: str = "item", segment: str | None = None) -> None:
        self.user, self.item, self.segment = user, item, segment

    def _fit_model(self, matrix: sp.csr_matrix) -> None:
        return None

    def _score(self, histories: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.popularity_ / (self.popularity_.max() or 1.0), (histories.shape[0], 1))


class CooccurrenceRecommender(Recommender):
    """Item-item co-occurrence: items bought by the same users, cosine-normalised, ``neighbours``
    strongest kept per item; a user's score for an item sums its similarity to the user's items."""

    name: ClassVar[str] = "cooccurrence"

    def __init__(
        self, user: str = "user", item: str = "item", segment: str | None = None, neighbours: int = 100
    ) -> None:
        self.user, self.item, self.segment, self.neighbours = user, item, segment, neighbours

    def _fit_model(self, matrix: sp.csr_matrix) -> None:
        binary = (matrix > 0).astype(np.float64)
        co = (binary.T @ binary).tocsr()
        norm = np.sqrt(co.diagonal()) + 1e-9
        co.setdiag(0)
        co.eliminate_zeros()
        sim = sp.diags(1 / norm) @ co @ sp.diags(1 / norm)
        self.similarity_ = _keep_strongest(sim.tocsr(), self.neighbours)

    def _score(self, histories: sp.csr_matrix) -> np.ndarray:
        sim = sp.csr_matrix(self.similarity_, shape=(len(self.items_), len(self.items_)))
        return np.asarray((histories @ sim).todense())


def _keep_strongest(matrix: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``n`` largest values of each row, as CSR arrays (data, indices, indptr)."""
    data, indices, indptr = [], [], [0]
    for r in range(matrix.shape[0]):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        values, cols = matrix.data[start:end], matrix.indices[start:end]
        if len(values) > n:
            keep = np.argpartition(-values, n - 1)[:n]
            values, cols = values[keep], cols[keep]
        data.append(values)
        indices.append(cols)
        indptr.append(indptr[-1] + len(values))
    return (
        np.concatenate(data).astype(np.float32) if data else np.zeros(0, np.float32),
        np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32),
        np.asarray(indptr, dtype=np.int64),
    )


class ALSRecommender(Recommender):
    """Matrix factorisation for implicit feedback (Hu, Koren and Volinsky 2008), fitted by
    alternating least squares with a few conjugate-gradient steps per solve (Takacs et al. 2011).

    Confidence of a bought pair is ``1 + alpha * log1p(lines)``; unbought pairs have preference 0
    and confidence 1. Only the item factors are kept: a user's factors are solved from the user's
    history when recommending (the exact ALS user step), so new purchases count at once.
    """

    name: ClassVar[str] = "als"

    def __init__(
        self,
        user: str = "user",
        item: str = "item",
        segment: str | None = None,
        factors: int = 64,
        regularization: float = 1.0,
        alpha: float = 2.0,
        iterations: int = 6,
        cg_steps: int = 3,
        random_state: int = 0,
    ) -> None:
        self.user, self.item, self.segment = user, item, segment
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.cg_steps, self.random_state = iterations, cg_steps, random_state

    def _confidence(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        weighted = matrix.astype(np.float32).tocsr(copy=True)
        weighted.data = self.alpha * np.log1p(weighted.data)
        return weighted

    def _fit_model(self, matrix: sp.csr_matrix) -> None:
        rng = np.random.default_rng(self.random_state)
        weighted = self._confidence(matrix)
        by_item = weighted.T.tocsr()
        users = rng.normal(0, 0.01, (matrix.shape[0], self.factors)).astype(np.float32)
        items = rng.normal(0, 0.01, (matrix.shape[1], self.factors)).astype(np.float32)
        for _ in range(self.iterations):
            users = _cg_solve(weighted, items, users, self.regularization, self.cg_steps)
            items = _cg_solve(by_item, users, items, self.regularization, self.cg_steps)
        self.item_factors_ = items.astype(np.float32)

    def _score(self, histories: sp.csr_matrix) -> np.ndarray:
        items = self.item_factors_
        weighted = self._confidence(histories)
        start = np.zeros((histories.shape[0], self.factors), dtype=np.float32)
        users = _cg_solve(weighted, items, start, self.regularization, max(self.cg_steps, 8))
        scores: np.ndarray = users @ items.T
        return scores.astype(np.float64)


def _cg_solve(weighted: sp.csr_matrix, Y: np.ndarray, X: np.ndarray, reg: float, steps: int) -> np.ndarray:
    """Conjugate-gradient steps on every row's ALS normal equations at once (vectorised over rows).

    Row ``u`` solves ``(Y'Y + Y' diag(c_u) Y + reg I) x_u = Y' (1 + c_u) p_u`` where ``c_u`` holds
    ``alpha * log1p(lines)`` of the bought items (their preference ``p`` is 1), starting from ``X``.
    """
    rows = np.repeat(np.arange(weighted.shape[0]), np.diff(weighted.indptr))
    cols, conf = weighted.indices, weighted.data
    gram = (Y.T @ Y + reg * np.eye(Y.shape[1])).astype(np.float32)
    Yc = Y[cols]  # the bought items' factors, one row per bought pair, gathered once
    scratch = sp.csr_matrix((conf.copy(), cols, weighted.indptr), shape=weighted.shape)

    def apply(V: np.ndarray) -> np.ndarray:
        scratch.data = np.einsum("ij,ij->i", V[rows], Yc) * conf
        return V @ gram + scratch @ Y

    scratch.data = 1 + conf
    b = scratch @ Y
    r = b - apply(X)
    p = r.copy()
    rs = np.einsum("ij,ij->i", r, r)
    for _ in range(steps):
        Ap = apply(p)
        step = rs / np.maximum(np.einsum("ij,ij->i", p, Ap), 1e-12)
        X = X + step[:, None] * p
        r = r - step[:, None] * Ap
        rs_new = np.einsum("ij,ij->i", r, r)
        p = r + (rs_new / np.maximum(rs, 1e-20))[:, None] * p
        rs = rs_new
    return X
