"""Request validation of the prediction routes: the model's data contract, enforced on each record.

``/v1`` and ``/v2`` check records with the served model's :class:`~loopml.validate.RecordChecker`
(strict JSON types, not-null, min/max, categories, pattern, no unknown fields; see
:mod:`loopml.validate.requests`) and answer a 422 whose message names the field, the value and the
rule, with every broken rule in ``error.details`` as ``{field, value, rule, error}``. Each answer
carries the id it was given, under the id column's name. The maintenance route still reads its
readings with the lax :func:`record_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from loopml.validate import (
    CheckedRecords,
    ColumnSpec,
    DataContract,
    RecordChecker,
    Violation,
    violations_error,
)

__all__ = ["answers", "checked_records", "record_field", "record_model"]

_TYPES: dict[str, Any] = {"int": int, "float": float, "bool": bool, "string": str, "datetime": datetime}


def record_field(batch: bool) -> Callable[[Violation], str]:
    """How ``/v1`` names a field: ``tx_amount`` in a single record, ``[1].tx_amount`` in a list."""
    if not batch:
        return lambda v: v.column or "body"
    return lambda v: f"[{v.row}].{v.column}" if v.column else f"[{v.row}]"


def checked_records(
    checker: RecordChecker, records: Sequence[Any], field: Callable[[Violation], str]
) -> CheckedRecords:
    """The records' values to score and log; a 422 (:class:`~loopml.errors.InputError`) naming the
    field (``field(violation)``), the value and the rule when one breaks the contract."""
    checked, violations = checker.check(records)
    if violations:
        raise violations_error(violations, field)
    return checked


def answers(
    checked: CheckedRecords, outputs: list[dict[str, Any]], ids: list[str], id_column: str | None
) -> list[dict[str, Any]]:
    """Each prediction's answer: its ``prediction_id``, the id it was given (under the id column's
    name; null when none was sent), the model's outputs, and ``scored_as_missing`` (column -> value)
    when a value outside its column's categories was scored as missing."""
    results = []
    for prediction_id, row, out, missing in zip(ids, checked.rows, outputs, checked.as_missing, strict=True):
        result: dict[str, Any] = {"prediction_id": prediction_id}
        if id_column is not None:
            result[id_column] = row.get(id_column)
        result.update(out)
        if missing:
            result["scored_as_missing"] = missing
        results.append(result)
    return results


def _field(spec: ColumnSpec) -> tuple[Any, Any]:
    base = _TYPES[spec.dtype]
    kwargs: dict[str, Any] = {}
    if spec.dtype in ("int", "float"):
        kwargs.update(ge=spec.min, le=spec.max, allow_inf_nan=False)
    if spec.nullable:
        return base | None, Field(None, **kwargs)
    return base, Field(..., **kwargs)


def record_model(contract: DataContract, columns: list[str]) -> type[BaseModel]:
    """A lax pydantic model of one input record (the maintenance route's readings): the model's input
    columns, typed by the contract; the id column is optional and passed through; unknown fields are
    ignored. The prediction routes use :func:`checked_records` instead.
    """
    fields: dict[str, Any] = {c: _field(contract.column(c)) for c in columns}
    if contract.id_column and contract.id_column not in fields:
        fields[contract.id_column] = (int | str | None, None)
    config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)
    return create_model(f"{contract.name.title()}Record", __config__=config, **fields)
