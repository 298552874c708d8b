"""The Open Inference Protocol (KServe v2) itself, whatever carries it: REST (JSON or binary tensors,
:mod:`loopml.serve.v2`) and gRPC (:mod:`loopml.serve.grpc`) both decode a request into an
:class:`InferRequest`, call :func:`infer` and encode the :class:`InferResult` it returns.

Inputs are columns: one tensor per input column (``name``, ``shape`` ``[n]`` or ``[n, 1]``,
``datatype`` from the model's data contract, ``data`` row-major and flat here). Outputs are the
``score`` (FP64), the ``label`` (INT64) and the ``prediction_id`` (BYTES) of each row, the id column
when it was sent as an input, and with the request's ``parameters`` ``{"explain": true}`` each row's
feature contributions (:mod:`loopml.serve.explain`). Every error is a :class:`~loopml.errors.LoopMLError`
whose message names the tensor (``inputs[i]`` or ``inputs.<name>.data[<row>]``) and the rule broken;
each transport presents it in its own way (a ``400`` with ``{"error": "<message>"}``, or a gRPC status).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from loopml.errors import InputError, NotFoundError, PayloadTooLargeError
from loopml.registry import get_version
from loopml.serve.deps import Recorder
from loopml.serve.explain import explain_parameters, explanation_tensors
from loopml.serve.routes import check_served, score_records
from loopml.serve.state import ModelHolder, Serving
from loopml.validate import Violation
from loopml.validate.policy import shown

__all__ = [
    "DATATYPES",
    "EXTENSIONS",
    "InferRequest",
    "InferResult",
    "InputTensor",
    "OutputTensor",
    "check_version",
    "infer",
    "model_metadata",
    "model_ready",
    "server_metadata",
]

# The datatype each contract type is served as, and the ones a client may send for it.
DATATYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES", "datetime": "BYTES"}
_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_ACCEPTED = {
    "int": _INTS,
    "float": _INTS | {"FP16", "FP32", "FP64"},
    "bool": {"BOOL"},
    "string": {"BYTES"},
    "datetime": {"BYTES"},
}
_OUTPUTS = {"score": "FP64", "label": "INT64", "prediction_id": "BYTES"}
EXTENSIONS = ["binary_tensor_data"]  # the protocol extensions this server speaks (server metadata)
_MORE_NAMED = 5  # further broken values named after the first in one error message


@dataclass(frozen=True)
class InputTensor:
    """One input column: ``data`` flat and row-major (a transport flattens or decodes it first)."""

    name: str
    datatype: str
    shape: Sequence[int]
    data: Sequence[Any]


@dataclass(frozen=True)
class InferRequest:
    """An inference request: ``outputs`` names the outputs asked for (None: all of them);
    ``parameters`` are the request's own (``explain``, ``explain_k``; others are accepted, unused)."""

    inputs: Sequence[InputTensor]
    outputs: Sequence[str] | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


@dataclass(frozen=True)
class InferResult:
    """The answer: ``parameters`` holds ``scored_as_missing`` when a value was scored as missing."""

    model_name: str
    model_version: str
    id: str
    outputs: list[OutputTensor]
    parameters: dict[str, Any]


def package_version() -> str:
    try:
        return version("loopml")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def server_metadata() -> dict[str, Any]:
    """The server metadata response: ``name``, ``version`` and ``extensions``."""
    return {"name": "loopml", "version": package_version(), "extensions": list(EXTENSIONS)}


def check_version(name: str, version: str | None, serving: Serving) -> None:
    """A 404 unless ``version`` (None or ``""``: the live one) is the version served."""
    served = str(serving.model.version.version)
    if version and version != served:
        raise NotFoundError(
            f"version '{version}' of model '{name}' is not served here; this server serves version {served}.",
            hint=f"Use /v2/models/{name}/versions/{served}/..., or /v2/models/{name}/... for the live one.",
        )


def _check_exists(name: str, version: str, holder: ModelHolder) -> None:
    """A 404 naming the model's versions unless ``version`` is one the registry holds."""
    current = holder.current
    if current is not None and version == str(current.model.version.version):
        return
    if not version.isdigit() or int(version) > 2**31 - 1:
        raise NotFoundError(f"version '{version}' of model '{name}' does not exist; versions are numbers.")
    get_version(holder.store.engine, name, int(version))  # a NotFoundError listing the versions


def model_metadata(name: str, holder: ModelHolder, version: str | None = None) -> dict[str, Any]:
    """The model metadata response: the inputs (typed by the data contract) and the outputs."""
    check_served(name, holder)
    serving = holder.get()
    check_version(name, version, serving)
    model = serving.model
    inputs = [
        {"name": c, "datatype": DATATYPES[model.contract.column(c).dtype], "shape": [-1]}
        for c in model.input_columns
    ]
    outputs = [{"name": n, "datatype": t, "shape": [-1]} for n, t in _OUTPUTS.items()]
    return {
        "name": name,
        "versions": [str(model.version.version)],
        "platform": "loopml",
        "inputs": inputs,
        "outputs": outputs,
    }


def model_ready(name: str, holder: ModelHolder, shutting_down: bool, version: str | None = None) -> bool:
    """Whether the model (that version of it, when given) is loaded and the server takes traffic; a
    version the registry does not hold is a 404, not "not ready" (a probe pinned to a typo is no
    outage)."""
    check_served(name, holder)
    if version:
        _check_exists(name, version, holder)
    ready = not shutting_down and holder.ready
    if ready and version:
        ready = version == str(holder.get().model.version.version)
    return ready


def infer(
    name: str, serving: Serving, request: InferRequest, recorder: Recorder, max_batch: int
) -> InferResult:
    """Check the tensors against the model's contract, score each row and log each prediction."""
    types = _output_types(serving, request)
    wanted = _requested_outputs(request, types)
    explain = explain_parameters(request.parameters)
    records = _records(serving, request, max_batch)
    parsed, violations = serving.checker.check(records)
    if violations:
        raise _contract_error(violations, request, serving)
    results = score_records(recorder, serving, parsed, explain)
    n = len(results)
    outputs = [OutputTensor(out, types[out], [n], [r[out] for r in results]) for out in wanted]
    if explain:
        outputs += [OutputTensor(**t) for t in explanation_tensors(results)]
    missing = [
        {"row": row, "input": column, "value": value}
        for row, found in enumerate(parsed.as_missing)
        for column, value in (found or {}).items()
    ]
    return InferResult(
        model_name=name,
        model_version=str(serving.model.version.version),
        id=request.id or str(uuid.uuid4()),
        outputs=outputs,
        parameters={"scored_as_missing": missing} if missing else {},
    )


def _contract_error(violations: list[Violation], request: InferRequest, serving: Serving) -> InputError:
    """v2's answer to rows that break the model's data contract (the one place that builds it): one
    message naming the first broken value's tensor and row (``inputs.<column>.data[<row>]``), the value
    and the rule, then up to five more by tensor, row and rule; an input the contract lacks is named
    once (``inputs[<i>].name``), and so is a missing one (``inputs``). ``details`` keeps them all."""
    index = {tensor.name: i for i, tensor in enumerate(request.inputs)}

    def where(v: Violation) -> str:
        if v.rule == "extra_field":
            return f"inputs[{index[v.column]}].name"
        if v.rule == "required":  # a column is one tensor: missing from one row, missing from all
            return "inputs"
        return f"inputs.{v.column}.data[{v.row}]"

    named = {(where(v), v.column): v for v in reversed(violations)}  # an input's name once
    kept = [v for v in violations if named.get((where(v), v.column)) is v]
    first = kept[0]
    if first.rule == "required":
        datatype = DATATYPES[serving.model.contract.column(first.column).dtype]
        message = (
            f"field 'inputs': input '{first.column}' is missing (contract rule: required); "
            f"send a tensor named '{first.column}' ({datatype}) with one value per row"
        )
    else:
        message = first.message(where(first))
    if len(kept) > 1:
        more = ", ".join(f"'{where(v)}' {_rule_of(v)}" for v in kept[1 : 1 + _MORE_NAMED])
        rest = len(kept) - 1 - _MORE_NAMED
        message += f"; also {more}" + (f" and {rest} more" if rest > 0 else "")
    return InputError(message + ".", details=[v.detail(where(v)) for v in kept[:100]])


def _rule_of(v: Violation) -> str:
    if v.rule == "required":
        return f"(input '{v.column}', contract rule: required)"
    return f"({shown(v.value)}, contract rule: {v.rule})"


def _output_types(serving: Serving, request: InferRequest) -> dict[str, str]:
    """The outputs a request may ask for, with their datatypes: the id column too when it is an input
    (each row's id, echoed)."""
    id_column = serving.model.contract.id_column
    if id_column is None or all(tensor.name != id_column for tensor in request.inputs):
        return _OUTPUTS
    return {**_OUTPUTS, id_column: DATATYPES[serving.model.contract.column(id_column).dtype]}


def _requested_outputs(request: InferRequest, types: dict[str, str]) -> list[str]:
    if not request.outputs:
        return list(types)
    for i, out in enumerate(request.outputs):
        if out not in types:
            raise InputError(f"field 'outputs[{i}].name': unknown output '{out}'; valid: {', '.join(types)}.")
    return list(request.outputs)


def _check_tensor(serving: Serving, i: int, tensor: InputTensor) -> None:
    """The tensor's datatype is one its column accepts; its shape is ``[n]`` or ``[n, 1]``."""
    contract, where = serving.model.contract, f"inputs[{i}]"
    if tensor.name in contract.names:
        dtype = contract.column(tensor.name).dtype
        if tensor.datatype not in _ACCEPTED[dtype]:
            raise InputError(
                f"field '{where}.datatype': input '{tensor.name}' is {DATATYPES[dtype]} "
                f"(accepted: {', '.join(sorted(_ACCEPTED[dtype]))}); got '{tensor.datatype}'."
            )
    shape = list(tensor.shape)
    if not 1 <= len(shape) <= 2 or any(d < 0 for d in shape) or shape[1:] not in ([], [1]):
        raise InputError(
            f"field '{where}.shape': shape {shape} of input '{tensor.name}' is not a column; "
            "expected [n] or [n, 1]."
        )
    if math.prod(shape) != len(tensor.data):
        raise InputError(
            f"field '{where}.shape': shape {shape} of input '{tensor.name}' does not fit its "
            f"{len(tensor.data)} values; expected [n] or [n, 1]."
        )


def _records(serving: Serving, request: InferRequest, max_batch: int) -> list[dict[str, Any]]:
    """One record per row from the column tensors, checking names, shapes and datatypes."""
    columns: dict[str, Sequence[Any]] = {}
    rows: int | None = None
    for i, tensor in enumerate(request.inputs):
        if tensor.name in columns:
            raise InputError(f"field 'inputs[{i}].name': input '{tensor.name}' is given twice.")
        _check_tensor(serving, i, tensor)
        n = tensor.shape[0]
        if rows is not None and n != rows:
            raise InputError(
                f"field 'inputs[{i}].shape': input '{tensor.name}' has {n} rows, the others {rows}."
            )
        rows = n
        columns[tensor.name] = tensor.data
    if not rows:
        raise InputError("field 'inputs': the tensors hold no rows.")
    if rows > max_batch:
        raise PayloadTooLargeError(f"batch of {rows} rows is over the limit of {max_batch}.")
    return [{name: values[r] for name, values in columns.items()} for r in range(rows)]
