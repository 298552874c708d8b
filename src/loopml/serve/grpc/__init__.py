"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), beside the REST API.

``loopml serve --grpc-port 8001`` serves it in the same process and event loop as the REST API,
sharing its model holder, tokens, prediction log and metrics. The service definition is the spec's
``grpc_predict_v2.proto`` (vendored with its Apache-2.0 licence), compiled into ``_descriptor.py``
by ``python -m loopml.serve.grpc._generate``. Importing this package imports no gRPC library.
"""

from __future__ import annotations

from loopml.serve.grpc.server import GrpcServer

__all__ = ["GrpcServer"]
