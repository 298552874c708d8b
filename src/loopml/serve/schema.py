"""Request models generated from a model's data contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from loopml.validate import ColumnSpec, DataContract

__all__ = ["record_model"]

_TYPES: dict[str, Any] = {"int": int, "float": float, "bool": bool, "string": str, "datetime": datetime}


def _field(spec: ColumnSpec) -> tuple[Any, Any]:
    base = _TYPES[spec.dtype]
    kwargs: dict[str, Any] = {}
    if spec.dtype in ("int", "float"):
        kwargs.update(ge=spec.min, le=spec.max, allow_inf_nan=False)
    if spec.nullable:
        return base | None, Field(None, **kwargs)
    return base, Field(..., **kwargs)


def record_model(contract: DataContract, columns: list[str]) -> type[BaseModel]:
    """A pydantic model of one input record: the model's input columns, typed by the contract.

    The id column is optional and passed through; unknown fields are ignored.
    """
    fields: dict[str, Any] = {c: _field(contract.column(c)) for c in columns}
    if contract.id_column and contract.id_column not in fields:
        fields[contract.id_column] = (int | str | None, None)
    config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)
    return create_model(f"{contract.name.title()}Record", __config__=config, **fields)
