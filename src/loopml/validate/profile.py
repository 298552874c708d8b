"""Reference profiles: what every feature and the prediction looked like at training time.

A profile keeps quantile bin edges and bin shares for numeric columns and category shares for
categorical ones, so drift can be computed later from the profile alone, without re-reading the
training data. Profiles are plain JSON-able dictionaries, stored with the model version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ColumnProfile", "Profile", "bin_counts", "build_profile"]

OTHER = "__other__"
MISSING = "__missing__"


@dataclass(frozen=True)
class ColumnProfile:
    """One column's reference distribution.

    Numeric: ``edges`` are the inner quantile cut points (bins are ``(-inf, e0], (e0, e1], ...,
    (e_last, inf)``) and ``shares`` the reference share of each bin, then of missing values.
    Categorical: ``categories`` (the most frequent, then ``__other__`` and ``__missing__``) and their
    shares.
    """

    name: str
    kind: str
    rows: int
    shares: list[float]
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """A readable name per bin, in ``shares`` order."""
        if self.kind == "categorical":
            return list(self.categories)
        bounds = ["-inf", *(f"{e:.4g}" for e in self.edges), "inf"]
        return [f"({lo}, {hi}]" for lo, hi in pairwise(bounds)] + [MISSING]


@dataclass(frozen=True)
class Profile:
    """Profiles of every feature and of the prediction."""

    columns: dict[str, ColumnProfile]
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": {k: asdict(v) for k, v in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls({k: ColumnProfile(**v) for k, v in data["columns"].items()}, int(data["rows"]))


def _numeric(name: str, values: pd.Series, bins: int) -> ColumnProfile:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite = x[np.isfinite(x)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if len(finite) else np.array([])
    profile = ColumnProfile(name, "numeric", len(x), [], edges.tolist())
    counts = bin_counts(values, profile)
    return ColumnProfile(name, "numeric", len(x), (counts / max(len(x), 1)).tolist(), edges.tolist())


def _categorical(name: str, values: pd.Series, top: int) -> ColumnProfile:
    text = values.astype("string")
    frequent = text.value_counts().index[:top].tolist()
    categories = [str(c) for c in frequent] + [OTHER, MISSING]
    profile = ColumnProfile(name, "categorical", len(values), [], [], categories)
    counts = bin_counts(values, profile)
    return ColumnProfile(
        name, "categorical", len(values), (counts / max(len(values), 1)).tolist(), [], categories
    )


def bin_counts(values: pd.Series, profile: ColumnProfile) -> np.ndarray:
    """Counts of ``values`` in the profile's bins (numeric bins then missing; or categories)."""
    if profile.kind == "numeric":
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        missing = ~np.isfinite(x)
        which = np.searchsorted(np.asarray(profile.edges, dtype=float), x[~missing], side="left")
        counts = np.bincount(which, minlength=len(profile.edges) + 1).astype(float)
        return np.append(counts, float(missing.sum()))
    text = values.astype("string")
    index = {c: i for i, c in enumerate(profile.categories)}
    codes = text.map(lambda v: index.get(v, index[OTHER]) if v is not pd.NA else index[MISSING])
    return np.bincount(codes.to_numpy(dtype=int), minlength=len(profile.categories)).astype(float)


def build_profile(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str], *, bins: int = 10, top: int = 20
) -> Profile:
    """Profile the named columns of ``frame`` (the prediction is just another numeric column)."""
    columns = {c: _numeric(c, frame[c], bins) for c in numeric}
    columns.update({c: _categorical(c, frame[c], top) for c in categorical})
    return Profile(columns, len(frame))
