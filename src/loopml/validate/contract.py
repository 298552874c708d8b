"""Data contracts: inferred from the first ingest, saved as human-editable YAML, enforced after."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopml.errors import ContractError

__all__ = [
    "ColumnSpec",
    "DataContract",
    "infer_contract",
    "latest_contract",
    "load_contract",
    "save_contract",
]

DType = Literal["int", "float", "bool", "string", "datetime"]
CATEGORY_CAP = 50


class ColumnSpec(BaseModel):
    """What one column must look like."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dtype: DType
    nullable: bool = False
    min: float | None = Field(None, description="Values below are refused.")
    max: float | None = Field(None, description="Values above are refused.")
    categories: list[str] | None = Field(None, description="The only allowed values, when set.")
    unique: bool = False


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
    return "string"


def _infer_column(series: pd.Series, *, is_id: bool, is_target: bool) -> ColumnSpec:
    dtype = _dtype_of(series)
    spec: dict[str, Any] = {"name": str(series.name), "dtype": dtype, "nullable": bool(series.isna().any())}
    if dtype in ("int", "float") and not is_id and series.notna().any() and float(series.min()) >= 0:
        spec["min"] = 0.0
    if dtype == "string" and not is_id:
        values = series.dropna().astype(str).unique()
        if len(values) <= CATEGORY_CAP:
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
) -> DataContract:
    """Infer a contract from data: types, nullability, non-negative ranges, small category sets, ids."""
    columns = [
        _infer_column(frame[col], is_id=col == id_column, is_target=col == target) for col in frame.columns
    ]
    return DataContract(name=name, columns=columns, id_column=id_column, event_time=event_time, target=target)


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
        "# Each column: dtype (int|float|bool|string|datetime), nullable, min/max, categories, unique.\n"
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
