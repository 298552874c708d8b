"""A compiled scoring path: records or frames straight into LightGBM's booster, without pandas.

For the pipelines loopml builds (a ColumnTransformer of passthrough numbers and window features,
an ``OrdinalEncoder`` for categories, :class:`~loopml.features.DatetimeParts` and relative window
features, then a binary ``LGBMClassifier``) the preprocessing is a handful of lookups per row, yet
scikit-learn spends ~97% of a one-row prediction on it. :func:`compile_pipeline` reads the fitted
pipeline once and returns a :class:`CompiledScorer` that builds the same float64 matrix (bit for bit)
and calls ``Booster.predict`` directly, with one thread for small inputs. Anything it does not
recognise gives ``None``, and the caller keeps the generic pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from loopml.features.datetime import _PARTS
from loopml.features.relative import ratio
from loopml.validate import DataContract

__all__ = ["SMALL_BATCH", "CompiledScorer", "compile_pipeline", "row_values"]

SMALL_BATCH = 256  # below this many rows LightGBM predicts on one thread (OpenMP start-up dominates)
_MAX_EXACT_INT = 2**53

# Each part of a datetime as a float, exactly as DatetimeParts computes it with pandas.
_DT_PARTS: dict[str, Callable[[datetime], float]] = {
    "hour": lambda d: float(d.hour),
    "dayofweek": lambda d: float(d.weekday()),
    "day": lambda d: float(d.day),
    "month": lambda d: float(d.month),
    "is_weekend": lambda d: float(d.weekday() >= 5),
    "is_night": lambda d: float(d.hour < 6 or d.hour >= 22),
}


class _Fallback(Exception):
    """A value or a pipeline the compiled path does not handle: use the generic pipeline."""


@dataclass(frozen=True)
class _Column:
    """One output column of the preprocessor: where its value comes from and how it is mapped."""

    source: str  # input column name, or window feature name (a ratio's numerator)
    kind: str  # "number", "window", "ordinal", "ratio" or a datetime part
    lookup: Mapping[Any, float] | None = None
    missing: float = -1.0
    unknown: float = -1.0
    denominator: str = ""  # a ratio's: a window feature name


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Fallback
    if isinstance(value, int) and abs(value) > _MAX_EXACT_INT:
        raise _Fallback
    number = float(value)
    return number if math.isfinite(number) else math.nan


def row_values(
    record: Mapping[str, Any], columns: Sequence[str], contract: DataContract
) -> dict[str, Any] | None:
    """One record's inputs as :meth:`LoadedModel.coerce` would give them, or None (use pandas).

    Numbers become floats (non-finite ones NaN), strings stay strings, datetimes must be naive
    ``datetime`` objects; anything else (text to parse, booleans, an aware datetime) is left to pandas.
    """
    try:
        return _row_values(record, columns, contract)
    except _Fallback:
        return None


def _row_values(record: Mapping[str, Any], columns: Sequence[str], contract: DataContract) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in columns:
        value = record.get(name)
        dtype = contract.column(name).dtype
        if dtype in ("int", "float"):
            out[name] = _number(value)
        elif dtype == "datetime":
            if not isinstance(value, datetime) or value.tzinfo is not None:
                raise _Fallback
            out[name] = value
        elif dtype == "string" and (value is None or isinstance(value, str)):
            out[name] = value
        else:
            raise _Fallback
    return out


class CompiledScorer:
    """The preprocessor as per-column lookups, and the LightGBM booster that scores the matrix."""

    def __init__(self, columns: list[_Column], booster: Any) -> None:
        self.columns = columns
        self.booster = booster

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Positive-class probability per row (one thread for small inputs, as in ``LoadedModel``)."""
        threads = 1 if len(matrix) < SMALL_BATCH else 0
        scores: np.ndarray = self.booster.predict(matrix, num_threads=threads)
        return scores

    def row_matrix(
        self, rows: Sequence[Mapping[str, Any]], windows: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """The float64 matrix for coerced rows (see :func:`row_values`) and their window features."""
        matrix = np.empty((len(rows), len(self.columns)), dtype=np.float64)
        for j, col in enumerate(self.columns):
            if col.kind == "window":
                assert windows is not None
                matrix[:, j] = windows[col.source]
            elif col.kind == "ratio":
                assert windows is not None
                matrix[:, j] = ratio(_operand(col.source, rows, windows), windows[col.denominator])
            else:
                for i, row in enumerate(rows):
                    matrix[i, j] = _cell(col, row[col.source])
        return matrix

    def frame_matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The same matrix, vectorised, for a frame of coerced inputs plus window features."""
        matrix = np.empty((len(features), len(self.columns)), dtype=np.float64)
        for j, col in enumerate(self.columns):
            if col.kind == "ratio":
                floats = (
                    features[c].to_numpy(dtype=np.float64, na_value=np.nan)
                    for c in (col.source, col.denominator)
                )
                matrix[:, j] = ratio(*floats)
            else:
                matrix[:, j] = _vector(col, features[col.source])
        return matrix

    @property
    def window_names(self) -> list[str]:
        return [c.source for c in self.columns if c.kind == "window"]


def _operand(name: str, rows: Sequence[Mapping[str, Any]], windows: Mapping[str, np.ndarray]) -> np.ndarray:
    """A ratio's numerator for each row: a window feature, or a coerced number input."""
    if name in windows:
        return np.asarray(windows[name], dtype=np.float64)
    return np.fromiter((row[name] for row in rows), dtype=np.float64, count=len(rows))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(col: _Column, value: Any) -> float:
    if col.kind == "number":
        return float(value)
    if col.kind == "ordinal":
        if _is_missing(value):
            return col.missing
        assert col.lookup is not None
        return col.lookup.get(value, col.unknown)
    return _DT_PARTS[col.kind](value)


def _vector(col: _Column, series: pd.Series) -> np.ndarray:
    if col.kind in ("number", "window"):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if col.kind == "ordinal":
        assert col.lookup is not None
        lookup, missing, unknown = col.lookup, col.missing, col.unknown
        return np.fromiter(
            (missing if _is_missing(v) else lookup.get(v, unknown) for v in series.tolist()),
            dtype=np.float64,
            count=len(series),
        )
    # The very expressions DatetimeParts.transform evaluates (NaT gives NaN hours but 0 flags).
    part: pd.Series = _PARTS[col.kind](pd.to_datetime(series, errors="coerce"))
    return part.astype("float64").to_numpy()


def compile_pipeline(
    pipeline: Any, contract: DataContract, window_names: Sequence[str]
) -> CompiledScorer | None:
    """A :class:`CompiledScorer` for a loopml-built LightGBM pipeline, or None for anything else."""
    try:
        return CompiledScorer(_columns(pipeline, contract, set(window_names)), _booster(pipeline))
    except _Fallback:
        return None


def _booster(pipeline: Any) -> Any:
    model = pipeline[-1]
    if type(model).__name__ != "LGBMClassifier" or not type(model).__module__.startswith("lightgbm"):
        raise _Fallback
    if len(getattr(model, "classes_", [])) != 2 or callable(getattr(model, "objective", None)):
        raise _Fallback
    return model.booster_


def _columns(pipeline: Any, contract: DataContract, windows: set[str]) -> list[_Column]:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    from loopml.features import DatetimeParts
    from loopml.features.relative import WindowRatios

    steps = getattr(pipeline, "steps", None)
    if steps is None or len(steps) != 2 or not isinstance(pipeline[0], ColumnTransformer):
        raise _Fallback
    transformer: ColumnTransformer = pipeline[0]
    if getattr(transformer, "sparse_output_", False):
        raise _Fallback
    out: list[_Column] = []
    for _name, step, names in transformer.transformers_:
        names = list(names) if not isinstance(names, str) else [names]
        if (isinstance(step, str) and step == "drop") or not names:
            continue
        identity = type(step) is FunctionTransformer and step.func is None  # a fitted "passthrough"
        if identity or (isinstance(step, str) and step == "passthrough"):
            out += [_passthrough(c, contract, windows) for c in names]
        elif isinstance(step, OrdinalEncoder):
            out += _ordinal(step, names, contract)
        elif type(step) is DatetimeParts:
            out += _datetime(step, names, contract)
        elif type(step) is WindowRatios:
            out += _ratios(step, contract, windows)
        else:
            raise _Fallback
    if len(out) != getattr(pipeline[-1], "n_features_in_", -1):
        raise _Fallback
    return out


def _passthrough(name: str, contract: DataContract, windows: set[str]) -> _Column:
    if name in windows:
        return _Column(name, "window")
    if name in contract.names and contract.column(name).dtype in ("int", "float"):
        return _Column(name, "number")
    raise _Fallback


def _ratios(step: Any, contract: DataContract, windows: set[str]) -> list[_Column]:
    columns = []
    for _, numerator, denominator in step.ratios:
        if denominator not in windows:
            raise _Fallback
        columns.append(
            _Column(_passthrough(numerator, contract, windows).source, "ratio", denominator=denominator)
        )
    return columns


def _ordinal(encoder: Any, names: list[str], contract: DataContract) -> list[_Column]:
    if (
        encoder.handle_unknown != "use_encoded_value"
        or getattr(encoder, "_infrequent_enabled", False)
        or not all(n in contract.names and contract.column(n).dtype == "string" for n in names)
    ):
        raise _Fallback
    missing = float(encoder.encoded_missing_value)
    columns = []
    for name, categories in zip(names, encoder.categories_, strict=True):
        values = categories.tolist()
        known = [c for c in values if isinstance(c, str)]
        if any(not isinstance(c, str) and not _is_missing(c) for c in values):
            raise _Fallback
        lookup = {c: float(i) for i, c in enumerate(known)}
        columns.append(_Column(name, "ordinal", lookup, missing, float(encoder.unknown_value)))
    return columns


def _datetime(step: Any, names: list[str], contract: DataContract) -> list[_Column]:
    if not all(n in contract.names and contract.column(n).dtype == "datetime" for n in names):
        raise _Fallback
    if any(p not in _DT_PARTS for p in step.parts):
        raise _Fallback
    return [_Column(name, part) for name in names for part in step.parts]
