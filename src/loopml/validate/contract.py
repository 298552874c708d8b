"""Data contracts: inferred from the first ingest, saved as human-editable YAML, enforced after.

What inference writes for each column: its ``dtype``; ``nullable`` when a value was missing;
``categories`` for text with at most ``contract.category_cap`` distinct values (never for the id);
``unique`` for the id column when no id repeats; and for numbers a range:

- ``min: 0`` when no value was negative (otherwise no minimum);
- ``max``: ``0`` when no value was positive, otherwise the observed maximum plus ``MAX_MARGIN``
  (1.0) times the larger of the observed range and the maximum's magnitude, rounded up to three
  significant digits: air temperatures seen between 295 K and 304 K give ``max: 608``, so 5,000 K
  is out of contract while a warmer day is not; a 0/1 flag gives ``max: 2``. The bound catches
  unit mistakes and sentinel values (99999, 1e9), not drift. The integer target of a classification
  task (``target_classes``) gets its observed maximum itself: its values are the classes, so a ``2``
  among 0/1 labels is a class nobody has, not a larger value.

Some numbers grow with time, and the next ingest's values would pass any maximum learned today.
Identifiers grow too, as new customers, cards or machines appear. They get no ``max``: the
``id_column``, the ``event_time``, the ``source.watermark`` column, the entity keys the project file
names (window and sequence entities, ``train.group_column``, the ranking's user and item, the
forecast's item and group), columns named like identifiers (``id``, ``customer_id``,
``CustomerID``, ``cardId``), and every number column that rises with the event time: on a spread
sample of up to ``TREND_SAMPLE_ROWS`` (20,000) rows, it never decreases as the event time grows
(counters, epoch seconds, day numbers), or its rank (Spearman) correlation with the event time is
at least ``RISING_CORRELATION`` (0.9; a noisy running total). Without an event time no column is judged
rising. The constants and the code are in :mod:`loopml.validate.bounds`. To change or drop an
inferred bound, set ``contract.columns.<column>.max`` in ``loopml.yaml`` (``null`` removes it) or
edit the contract file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopml.errors import ContractError
from loopml.validate.bounds import Trend, is_number, looks_like_id, upper_bound
from loopml.validate.seen import Seen, row_hashes

__all__ = [
    "ColumnSpec",
    "ContractInferrer",
    "DataContract",
    "infer_contract",
    "latest_contract",
    "load_contract",
    "save_contract",
]

DType = Literal["int", "float", "bool", "string", "datetime"]
CATEGORY_CAP = 50
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"


class ColumnSpec(BaseModel):
    """What one column must look like."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dtype: DType
    nullable: bool = False
    min: float | None = Field(None, description="Values below are refused.")
    max: float | None = Field(None, description="Values above are refused.")
    categories: list[str] | None = Field(None, description="The only allowed values, when set.")
    pattern: str | None = Field(None, description="A regular expression every value must match.")
    unique: bool = False
    on_unknown_category: Literal["reject", "missing"] | None = Field(
        None,
        description="When a model scores (API, batch), a value outside the categories is refused (reject: "
        "a 422, a quarantined batch row) or scored as missing; unset: loopml.yaml's "
        "contract.on_unknown_category.",
    )


class DataContract(BaseModel):
    """The columns of a data set and the roles of the special ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: int = 1
    columns: list[ColumnSpec]
    id_column: str | None = None
    event_time: str | None = None
    target: str | None = None

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name``."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.columns]


def _dtype_of(series: pd.Series) -> DType:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        non_null = series.dropna()
        whole = bool(len(non_null)) and bool(np.all(np.mod(non_null.to_numpy(), 1) == 0))
        return "int" if whole and not series.isna().any() else "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "datetime" if _looks_like_dates(series) else "string"


def _looks_like_dates(series: pd.Series) -> bool:
    """Text that is all ISO 8601 dates (as CSV files and SQLite hand them over) is a datetime column."""
    values = series.dropna()
    if not len(values) or not all(isinstance(v, str) for v in values.iloc[:100]):
        return False
    step = max(len(values) // 1000, 1)  # a spread sample: a value that is not a date fails its type check
    return bool(values.iloc[::step].astype(str).str.match(_ISO_DATE).all())


def _infer_column(
    series: pd.Series,
    *,
    is_id: bool,
    is_target: bool,
    category_cap: int = CATEGORY_CAP,
    categories: bool = True,
) -> ColumnSpec:
    dtype = _dtype_of(series)
    spec: dict[str, Any] = {"name": str(series.name), "dtype": dtype, "nullable": bool(series.isna().any())}
    if dtype in ("int", "float") and not is_id and series.notna().any() and float(series.min()) >= 0:
        spec["min"] = 0.0
    if dtype == "string" and not is_id and categories:
        values = series.dropna().astype(str).unique()
        if len(values) <= category_cap:
            spec["categories"] = sorted(values.tolist())
    if is_target and dtype in ("int", "bool"):
        spec["categories"] = None
    spec["unique"] = is_id and bool(series.is_unique)
    return ColumnSpec(**spec)


def infer_contract(
    frame: pd.DataFrame,
    name: str,
    *,
    id_column: str | None = None,
    event_time: str | None = None,
    target: str | None = None,
    category_cap: int = CATEGORY_CAP,
) -> DataContract:
    """Infer a contract from data: types, nullability, non-negative ranges, small category sets, ids."""
    inferrer = ContractInferrer(
        name, id_column=id_column, event_time=event_time, target=target, category_cap=category_cap
    )
    inferrer.update(frame)
    return inferrer.result()


def _merge_dtype(a: DType, b: DType) -> DType:
    if a == b:
        return a
    if {a, b} <= {"int", "float"}:
        return "float"
    return "string"


def _merge(a: ColumnSpec, b: ColumnSpec, cap: int) -> ColumnSpec:
    """One spec for the union of the data that gave ``a`` and ``b``."""
    dtype = _merge_dtype(a.dtype, b.dtype)
    categories = None
    if dtype == "string" and a.categories is not None and b.categories is not None:
        union = sorted(set(a.categories) | set(b.categories))
        categories = union if len(union) <= cap else None
    both_non_negative = a.min == 0.0 and b.min == 0.0 and dtype in ("int", "float")
    return a.model_copy(
        update={
            "dtype": dtype,
            "nullable": a.nullable or b.nullable,
            "min": 0.0 if both_non_negative else None,
            "categories": categories,
        }
    )


class ContractInferrer:
    """Infer one contract from data that arrives in chunks, holding only a summary of what was seen.

    Examples
    --------
    >>> inferrer = ContractInferrer("t", id_column="k")
    >>> inferrer.update(pd.DataFrame({"k": [1, 2], "x": [0.5, None]}))
    >>> inferrer.update(pd.DataFrame({"k": [3, 4], "x": [-1.0, 2.0]}))
    >>> [(c.name, c.dtype, c.nullable, c.min, c.max, c.unique) for c in inferrer.result().columns]
    [('k', 'int', False, None, None, True), ('x', 'float', True, None, 5.0, False)]

    ``unbounded`` names more columns that grow and get no ``max``: the ``source.watermark`` column
    and the entity keys of the project file (see the module's docstring).
    """

    def __init__(
        self,
        name: str,
        *,
        id_column: str | None = None,
        event_time: str | None = None,
        target: str | None = None,
        category_cap: int = CATEGORY_CAP,
        unbounded: Iterable[str] = (),
        target_classes: bool = False,
    ) -> None:
        self.name, self.id_column, self.event_time, self.target = name, id_column, event_time, target
        self.target_classes = target_classes
        self.category_cap = category_cap
        self._unbounded = {c for c in (id_column, event_time, *unbounded) if c is not None}
        self._ranges: dict[str, tuple[float, float]] = {}  # numbers: the lowest and highest value seen
        self._trend = Trend(event_time) if event_time is not None else None
        self._specs: dict[str, ColumnSpec | None] = {}  # None: every value so far was missing
        self._nulls: dict[str, bool] = {}
        self._ids = Seen()
        self._duplicate_id = False

    def update(self, frame: pd.DataFrame) -> None:
        """Add one chunk of rows."""
        for col in frame.columns:
            name, series = str(col), frame[col]
            self._nulls[name] = self._nulls.get(name, False) or bool(series.isna().any())
            if series.isna().all():
                self._specs.setdefault(name, None)
                continue
            known = self._specs.get(name)
            spec = _infer_column(
                series,
                is_id=name == self.id_column,
                is_target=name == self.target,
                category_cap=self.category_cap,
                categories=known is None or known.categories is not None,  # once over the cap, always
            )
            self._specs[name] = spec if known is None else _merge(known, spec, self.category_cap)
            if is_number(series):
                low, high = float(series.min()), float(series.max())
                seen = self._ranges.get(name, (low, high))
                self._ranges[name] = (min(seen[0], low), max(seen[1], high))
        if self._trend is not None:
            self._trend.update(frame)
        if self.id_column in frame.columns and not self._duplicate_id:
            ids = frame[[self.id_column]].dropna()
            self._duplicate_id = bool(self._ids.duplicates(row_hashes(ids, [str(self.id_column)])).any())

    def _maxima(self) -> dict[str, float]:
        """The ``max`` of each number column that does not grow with time (see the module's docstring)."""
        growing = self._unbounded | (self._trend.rising() if self._trend is not None else set())
        growing |= {name for name in self._ranges if looks_like_id(name)}
        return {
            name: upper_bound(low, high)
            for name, (low, high) in self._ranges.items()
            if name not in growing and math.isfinite(low) and math.isfinite(high)
        }

    def result(self) -> DataContract:
        """The contract for everything seen so far."""
        columns = []
        maxima = self._maxima()
        for name, spec in self._specs.items():
            if spec is None:
                spec = ColumnSpec(name=name, dtype="float", nullable=True)
            is_id = name == self.id_column
            update: dict[str, Any] = {
                "nullable": self._nulls[name],
                "unique": is_id and not self._duplicate_id,
            }
            if name == self.target and spec.dtype in ("int", "bool"):
                update["categories"] = None
            if spec.dtype in ("int", "float") and name in maxima:
                update["max"] = maxima[name]
                if self.target_classes and name == self.target and spec.dtype == "int":
                    update["max"] = self._ranges[name][1]  # the largest class seen
            columns.append(spec.model_copy(update=update))
        return DataContract(
            name=self.name,
            columns=columns,
            id_column=self.id_column,
            event_time=self.event_time,
            target=self.target,
        )


def _file(directory: Path, name: str, version: int) -> Path:
    return directory / f"{name}.v{version}.yaml"


def save_contract(contract: DataContract, directory: Path) -> Path:
    """Write the contract as ``<directory>/<name>.v<version>.yaml`` (never overwriting one)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = _file(directory, contract.name, contract.version)
    if path.exists():
        raise ContractError(f"contract file {path} already exists; contracts are versioned, not overwritten.")
    header = (
        f"# Data contract for '{contract.name}' v{contract.version}, inferred by loopml; edit freely.\n"
        "# Each column: dtype (int|float|bool|string|datetime), nullable, min/max, categories, unique,\n"
        "# on_unknown_category (reject|missing: what scoring does with a value outside the categories).\n"
    )
    body = yaml.safe_dump(contract.model_dump(exclude_none=True), sort_keys=False, allow_unicode=True)
    path.write_text(header + body, encoding="utf-8")
    return path


def load_contract(path: Path) -> DataContract:
    """Read a contract file; a malformed one is a one-line :class:`ContractError`."""
    try:
        return DataContract.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).splitlines()[:3]
        raise ContractError(f"contract file {path} is invalid: {' '.join(first)}") from None


def latest_contract(directory: Path, name: str) -> DataContract | None:
    """The highest-versioned contract for ``name`` in ``directory``, if any."""
    pattern = re.compile(rf"^{re.escape(name)}\.v(\d+)\.yaml$")
    found = [(int(m.group(1)), p) for p in directory.glob(f"{name}.v*.yaml") if (m := pattern.match(p.name))]
    return load_contract(max(found)[1]) if found else None
