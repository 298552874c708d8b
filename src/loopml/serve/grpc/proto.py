"""The messages of ``grpc_predict_v2.proto`` as Python classes, built from its compiled descriptor.

The descriptor goes into a descriptor pool of loopml's own, not protobuf's default one: the protocol's
messages have the same full names (``inference.ModelInferRequest``, ...) in every v2 client library
(``tritonclient``, ``kserve``), so a process that imports one of them and runs loopml's gRPC server
(a notebook, a test) would otherwise fail with a duplicate symbol. Built from the descriptor rather
than from protoc's generated ``*_pb2.py``, the classes work with any protobuf runtime from 4.25 on.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from loopml._optional import require
from loopml.serve.grpc._descriptor import SERIALIZED

__all__ = ["PACKAGE", "SERVICE", "messages"]

PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"
_MESSAGES = (
    "ServerLiveRequest",
    "ServerLiveResponse",
    "ServerReadyRequest",
    "ServerReadyResponse",
    "ModelReadyRequest",
    "ModelReadyResponse",
    "ServerMetadataRequest",
    "ServerMetadataResponse",
    "ModelMetadataRequest",
    "ModelMetadataResponse",
    "ModelInferRequest",
    "ModelInferResponse",
    "InferParameter",
    "InferTensorContents",
)


@cache
def messages() -> dict[str, Any]:
    """Each message class of the protocol by its short name (``"ModelInferRequest"``: its class)."""
    descriptor_pool = require("google.protobuf.descriptor_pool", "the gRPC endpoint")
    message_factory = require("google.protobuf.message_factory", "the gRPC endpoint")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(SERIALIZED)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in _MESSAGES
    }
