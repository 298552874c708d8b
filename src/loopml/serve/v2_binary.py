"""The binary tensor data extension of the Open Inference Protocol (REST), and the raw tensor format
that gRPC's ``raw_input_contents`` / ``raw_output_contents`` share with it.

A request whose ``Inference-Header-Content-Length: N`` header is set carries its JSON in the first
``N`` bytes of the body and, after it, the data of each input whose ``parameters.binary_data_size``
is set, in the order of the inputs, that many bytes each. A tensor's bytes are its values row-major,
little-endian, with no padding: ``BOOL`` one byte (0 or 1), integers and floats at their width
(``FP16`` as IEEE half), and ``BYTES`` as each element's length (4 bytes, little-endian) then its
bytes. The response does the same for each output asked for in binary (its ``parameters.binary_data``,
or the request's ``parameters.binary_data_output``): ``binary_data_size`` in place of ``data``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from loopml.errors import InputError, did_you_mean

__all__ = [
    "HEADER",
    "BinaryPart",
    "decode_tensor",
    "encode_tensor",
    "split_body",
    "unknown_datatype",
]

HEADER = "Inference-Header-Content-Length"
# Each fixed-width datatype as a little-endian NumPy dtype (BOOL is read as bytes and checked).
_FIXED = {
    "BOOL": "u1",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_LENGTH = struct.Struct("<I")


def unknown_datatype(datatype: str, where: str) -> InputError:
    """The error for a datatype the protocol does not define, naming the closest one."""
    return InputError(
        f"field '{where}.datatype': '{datatype}' is no datatype of the protocol; "
        f"{did_you_mean(datatype, [*_FIXED, 'BYTES'])}"
    )


def decode_tensor(datatype: str, raw: bytes, where: str, name: str) -> list[Any]:
    """The values of one tensor's raw bytes, as Python values (``BYTES`` as UTF-8 text), flat.

    ``where`` (``inputs[2]``) and ``name`` name the tensor in an error.

    Examples
    --------
    >>> decode_tensor("FP64", encode_tensor("FP64", [1.5, 2.0]), "inputs[0]", "x")
    [1.5, 2.0]
    >>> decode_tensor("BYTES", encode_tensor("BYTES", ["a", "bc"]), "inputs[0]", "x")
    ['a', 'bc']
    """
    if datatype == "BYTES":
        return _decode_bytes(raw, name)
    dtype = _FIXED.get(datatype)
    if dtype is None:
        raise unknown_datatype(datatype, where)
    size = np.dtype(dtype).itemsize
    if len(raw) % size:
        raise InputError(
            f"field '{where}.parameters.binary_data_size': {len(raw)} bytes of input '{name}' are no "
            f"whole number of {datatype} values ({size} bytes each)."
        )
    values = np.frombuffer(raw, dtype=dtype)
    if datatype != "BOOL":
        return list(values.tolist())
    if (values > 1).any():
        row = int(np.argmax(values > 1))
        raise InputError(
            f"field 'inputs.{name}.data[{row}]': byte {int(values[row])} is no BOOL (0 or 1) (rule: type)."
        )
    return list((values == 1).tolist())


def _decode_bytes(raw: bytes, name: str) -> list[Any]:
    values: list[Any] = []
    offset = 0
    while offset < len(raw):
        row = len(values)
        if offset + 4 > len(raw):
            raise InputError(f"field 'inputs.{name}.data[{row}]': the BYTES element's 4-byte length is cut.")
        (length,) = _LENGTH.unpack_from(raw, offset)
        start, offset = offset + 4, offset + 4 + length
        if offset > len(raw):
            raise InputError(
                f"field 'inputs.{name}.data[{row}]': the BYTES element says {length} bytes; "
                f"{len(raw) - start} are left."
            )
        try:
            values.append(raw[start:offset].decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(
                f"field 'inputs.{name}.data[{row}]': the value is not UTF-8 text (rule: type)."
            ) from None
    return values


def encode_tensor(datatype: str, data: Sequence[Any]) -> bytes:
    """One tensor's values as raw bytes (the inverse of :func:`decode_tensor`); None as NaN in floats."""
    if datatype == "BYTES":
        parts = []
        for value in data:
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts += [_LENGTH.pack(len(raw)), raw]
        return b"".join(parts)
    if datatype.startswith("FP"):
        data = [float("nan") if v is None else v for v in data]
    return np.asarray(data, dtype=_FIXED[datatype]).tobytes()


def split_body(body: bytes, header_length: str) -> tuple[bytes, bytes]:
    """The JSON header and the binary data after it, as the ``Inference-Header-Content-Length`` says."""
    value = header_length.strip()
    if not value.isdigit() or int(value) > len(body):
        raise InputError(
            f"header '{HEADER}': {value!r} is no length within the body of {len(body)} bytes; "
            "it gives the size of the JSON that starts the body."
        )
    return body[: int(value)], body[int(value) :]


class BinaryPart:
    """The binary data after the JSON header, handed out tensor by tensor in the order of the inputs."""

    def __init__(self, data: bytes) -> None:
        self._data, self._offset = memoryview(data), 0

    def take(self, size: int, where: str, name: str) -> bytes:
        """The next ``size`` bytes: input ``name``'s (at ``where``)."""
        left = len(self._data) - self._offset
        if size > left:
            raise InputError(
                f"field '{where}.parameters.binary_data_size': input '{name}' says {size} bytes; the "
                f"body has {left} left after the JSON header ({HEADER}) and the inputs before it."
            )
        start, self._offset = self._offset, self._offset + size
        return bytes(self._data[start : self._offset])

    def finish(self) -> None:
        """Refuse bytes that no input's ``binary_data_size`` claimed."""
        left = len(self._data) - self._offset
        if left:
            raise InputError(
                f"field 'inputs': {left} bytes after the JSON header belong to no input; give each binary "
                "input's size in its parameters.binary_data_size."
            )
