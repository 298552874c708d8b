"""gRPC messages to and from the protocol's request and result (:mod:`loopml.serve.v2_infer`).

An input's values come from its typed ``contents`` (``fp64_contents`` for FP64, ...) or, when the
request uses them, from ``raw_input_contents`` (one entry per input, in the binary extension's format,
:mod:`loopml.serve.v2_binary`). The response answers in the form the request used: raw outputs to a raw
request (as Triton does), typed ``contents`` otherwise. Parameters are passed through both ways; the
response's ``scored_as_missing`` (a list) travels as JSON text in a ``string_param``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from loopml.errors import InputError
from loopml.serve.grpc.proto import messages
from loopml.serve.v2_binary import decode_tensor, encode_tensor, unknown_datatype
from loopml.serve.v2_infer import InferRequest, InferResult, InputTensor

__all__ = ["CONTENTS", "decode_request", "encode_response", "parameters_of"]

# The field of InferTensorContents that holds each datatype (FP16 travels raw only).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_KINDS = ("bool_param", "int64_param", "string_param")


def parameters_of(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A message's ``parameters`` map as plain values (a parameter of no known kind as None)."""
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        kind = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, kind) if kind in _KINDS else None
    return out


def decode_request(message: Any) -> InferRequest:
    """The protocol's request from a ``ModelInferRequest``."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InputError(
            f"field 'raw_input_contents': {len(raw)} entries for {len(message.inputs)} inputs; "
            "send one per input, in the order of the inputs."
        )
    inputs = []
    for i, tensor in enumerate(message.inputs):
        where = f"inputs[{i}]"
        if raw and tensor.HasField("contents"):
            raise InputError(
                f"field '{where}.contents': input '{tensor.name}' has contents although the request "
                "uses raw_input_contents; send every input one way."
            )
        data = decode_tensor(tensor.datatype, raw[i], where, tensor.name) if raw else _contents(tensor, where)
        inputs.append(InputTensor(tensor.name, tensor.datatype, list(tensor.shape), data))
    return InferRequest(
        inputs=inputs,
        outputs=[out.name for out in message.outputs] or None,
        parameters=parameters_of(message.parameters),
        id=message.id or None,
    )


def _contents(tensor: Any, where: str) -> list[Any]:
    field = CONTENTS.get(tensor.datatype)
    if field is None:
        if tensor.datatype == "FP16":
            raise InputError(
                f"field '{where}.contents': FP16 has no contents field; send raw_input_contents."
            )
        raise unknown_datatype(tensor.datatype, where)
    given = [f.name for f, _ in tensor.contents.ListFields()]
    if given and field not in given:
        raise InputError(
            f"field '{where}.contents': input '{tensor.name}' is {tensor.datatype}, so its values go in "
            f"contents.{field}; got {', '.join(given)}."
        )
    values = list(getattr(tensor.contents, field))
    if tensor.datatype != "BYTES":
        return values
    try:
        return [value.decode("utf-8") for value in values]
    except UnicodeDecodeError:
        row = next(r for r, v in enumerate(values) if not _utf8(v))
        raise InputError(
            f"field 'inputs.{tensor.name}.data[{row}]': the value is not UTF-8 text (rule: type)."
        ) from None


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode_response(result: InferResult, raw: bool) -> Any:
    """A ``ModelInferResponse`` of ``result``: outputs in ``raw_output_contents`` when ``raw``."""
    classes = messages()
    response = classes["ModelInferResponse"](
        model_name=result.model_name, model_version=result.model_version, id=result.id
    )
    for key, value in result.parameters.items():
        response.parameters[key].CopyFrom(_parameter(classes["InferParameter"], value))
    for out in result.outputs:
        tensor = response.outputs.add(name=out.name, datatype=out.datatype, shape=out.shape)
        if raw:
            response.raw_output_contents.append(encode_tensor(out.datatype, out.data))
        else:
            getattr(tensor.contents, CONTENTS[out.datatype]).extend(_typed(out.datatype, out.data))
    return response


def _typed(datatype: str, data: list[Any]) -> list[Any]:
    if datatype == "BYTES":
        return [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in data]
    if datatype.startswith("FP"):
        return [math.nan if v is None else v for v in data]
    return data


def _parameter(cls: Any, value: Any) -> Any:
    if isinstance(value, bool):
        return cls(bool_param=value)
    if isinstance(value, int):
        return cls(int64_param=value)
    if isinstance(value, str):
        return cls(string_param=value)
    return cls(string_param=json.dumps(value, default=str))
