"""The gRPC endpoint's server: a ``grpc.aio`` server in the event loop of the REST API's server.

It runs in the same loop as uvicorn, so a gRPC request is scored exactly as a REST one is (one
thread, the same model holder, nothing shared across threads). :func:`loopml.serve.run_server` starts
it once the app's lifespan has started (the prediction log is open) and stops it first on shutdown
(requests in flight finish before the prediction log drains).
"""

from __future__ import annotations

from typing import Any

from loopml._optional import require
from loopml.errors import BusyError
from loopml.serve.deps import ServerState
from loopml.serve.grpc.service import generic_handler

__all__ = ["GrpcServer"]

GRACE_SECONDS = 30.0  # as the REST server's graceful shutdown


class GrpcServer:
    """The protocol's gRPC service on ``host``:``port`` for the app whose ``state`` it shares."""

    def __init__(self, state: ServerState, host: str, port: int) -> None:
        self.state, self.host, self.port = state, host, port
        self._server: Any = None

    @property
    def address(self) -> str:
        """``host:port`` (an IPv6 host in brackets), as a gRPC client dials it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def started(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Bind and start serving (in the running event loop); a port in use is a :class:`BusyError`."""
        grpc = require("grpc", "the gRPC endpoint")
        limit = self.state.settings.serve.max_body_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),  # a port in use is an error, not a second listener
                ("grpc.max_receive_message_length", limit),  # the REST body limit
            ]
        )
        server.add_generic_rpc_handlers((generic_handler(grpc, self.state),))
        try:
            bound = server.add_insecure_port(self.address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise BusyError(f"gRPC port {self.address} cannot be bound (in use?); pass another --grpc-port")
        self.port = bound
        await server.start()
        self._server = server

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        """Refuse new calls, let those in flight finish (up to ``grace`` seconds), then stop."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
