"""Running the API in a background thread on a free local port (demos and tests)."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from types import FrameType, TracebackType
from typing import Any

from fastapi import FastAPI

from loopml._optional import require
from loopml.errors import BusyError, InputError, LoopMLError
from loopml.serve.connections import limited_protocol
from loopml.serve.deps import server_state
from loopml.serve.grpc import GrpcServer
from loopml.serve.latency import settle_for_latency

__all__ = ["BackgroundServer", "ServerProcess", "connection_limits", "free_port", "listen", "run_server"]


def listen(host: str, port: int, option: str = "--port") -> socket.socket:
    """A socket bound to ``host``:``port`` (0: a free port) for :func:`run_server`, bound before
    anything is printed or loaded: a port in use is a :class:`BusyError`, an address this machine
    cannot bind an :class:`InputError`, each one line naming the option to change (``option``)."""
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on accepted sockets
    # whose protocol says TCP; with proto 0 every response waited ~40 ms for the client's delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no conflict
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BusyError(
                f"port {port} on {host} is in use; pass {option} or stop the other server"
            ) from None
        raise InputError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pass another --host or {option}"
        ) from None
    return sock


def _with_grpc(uvicorn: Any, grpc: GrpcServer | None) -> Any:
    """A uvicorn ``Server`` class that also serves ``grpc`` (when given) in its event loop: started
    once the app's lifespan has started, stopped before the HTTP server (requests in flight on both
    finish before the lifespan closes the prediction log). A gRPC port that cannot be bound stops the
    server; :attr:`failure` holds the error, for the caller to raise once uvicorn has returned."""

    class _Server(uvicorn.Server):
        should_exit: bool
        failure: LoopMLError | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if grpc is not None and not self.should_exit:
                try:
                    await grpc.start()
                except LoopMLError as exc:
                    self.failure = exc
                    self.should_exit = True

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if grpc is not None:
                await grpc.stop()
            await super().shutdown(sockets=sockets)

    return _Server


def run_server(
    app: FastAPI,
    host: str,
    port: int,
    *,
    shutdown_delay: float = 0.0,
    sock: socket.socket | None = None,
    grpc_port: int | None = None,
) -> None:
    """Serve ``app`` until SIGTERM or Ctrl+C, then shut down gracefully.

    On SIGTERM readiness turns 503 at once; the server keeps serving for ``shutdown_delay`` seconds
    (time for a load balancer to stop sending traffic), then stops accepting connections, lets the
    requests in flight finish (up to 30 s), drains the prediction log, and exits with status 0.
    ``sock``: a socket from :func:`listen` to serve on (else uvicorn binds ``host``:``port``).
    ``grpc_port``: also serve the Open Inference Protocol over gRPC on ``host``:``grpc_port``, in the
    same event loop, with the same model, tokens, prediction log and metrics.
    """
    uvicorn = require("uvicorn", "serving the API")
    state = server_state(app)
    runtime = state.runtime
    grpc = GrpcServer(state, host, grpc_port) if grpc_port is not None else None

    class _Server(_with_grpc(uvicorn, grpc)):  # type: ignore[misc]
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            settle_for_latency()  # the model and its window state are loaded now

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig != signal.SIGTERM or self.should_exit or runtime.shutting_down:
                super().handle_exit(sig, frame)
                return
            runtime.shutting_down = True
            timer = threading.Timer(shutdown_delay, self._stop)
            timer.daemon = True
            timer.start()

        def _stop(self) -> None:
            self.should_exit = True  # a graceful exit: not re-raised as a signal afterwards

    config = uvicorn.Config(  # log_config None: uvicorn's records go through loopml's --log-format
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,  # loopml.access logs each request, with its duration and request id
        timeout_graceful_shutdown=30,
        **connection_limits(app),
    )
    server = _Server(config)
    server.run(sockets=[sock] if sock is not None else None)
    if server.failure is not None:
        raise server.failure


def connection_limits(app: FastAPI) -> dict[str, Any]:
    """uvicorn settings that bound the connections of a loopml app (see
    :mod:`loopml.serve.connections`): ``serve.max_connections_per_client`` per client address, and
    ``serve.body_timeout`` for a request's head to arrive. Nothing for an app of another kind."""
    try:
        serve = server_state(app).settings.serve
    except RuntimeError:
        return {}
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return {"http": limited_protocol(AutoHTTPProtocol, serve.max_connections_per_client, serve.body_timeout)}


class BackgroundServer:
    """A real uvicorn server on ``host``:(a free port), started and stopped as a context manager.

    Examples
    --------
    >>> import httpx
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> with BackgroundServer(app) as server:
    ...     httpx.get(f"{server.url}/openapi.json").status_code
    200

    With ``grpc_port`` (0: a free one) an app made by :func:`~loopml.serve.create_app` also serves
    the Open Inference Protocol over gRPC, at :attr:`grpc_address`, as ``loopml serve --grpc-port``.
    """

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, grpc_port: int | None = None
    ) -> None:
        uvicorn = require("uvicorn", "serving the API")
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = host, self._socket.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", access_log=False, **connection_limits(app)
        )
        self._grpc = GrpcServer(server_state(app), host, grpc_port) if grpc_port is not None else None
        self._server = _with_grpc(uvicorn, self._grpc)(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def grpc_address(self) -> str:
        """``host:port`` of the gRPC endpoint (started with ``grpc_port``)."""
        if self._grpc is None:
            raise RuntimeError("this server has no gRPC endpoint; start it with grpc_port")
        return self._grpc.address

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started or (self._grpc is not None and not self._grpc.started):
            if self._server.failure is not None:
                raise self._server.failure
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(30)
        self._socket.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``loopml serve`` in a child process (its own GIL, as in production), stopped with SIGTERM.

    With ``grpc_port`` (0: a free one) it serves gRPC too (``--grpc-port``), at :attr:`grpc_address`.
    """

    def __init__(
        self,
        project_dir: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        grpc_port: int | None = None,
    ) -> None:
        self.host, self.port = host, port or free_port(host)
        self.grpc_port = (grpc_port or free_port(host)) if grpc_port is not None else None
        self.env = {**os.environ, **(env or {})}
        self.command = [
            sys.executable,
            "-m",
            "loopml",
            "serve",
            "--project",
            str(project_dir),
            "--host",
            host,
            "--port",
            str(self.port),
        ]
        if self.grpc_port is not None:
            self.command += ["--grpc-port", str(self.grpc_port)]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def grpc_address(self) -> str:
        """``host:port`` of the gRPC endpoint (started with ``grpc_port``)."""
        if self.grpc_port is None:
            raise RuntimeError("this server has no gRPC endpoint; start it with grpc_port")
        return f"{self.host}:{self.grpc_port}"

    def _ready(self, httpx: Any) -> bool:
        if httpx.get(f"{self.url}/health/ready", timeout=1).status_code != 200:
            return False
        if self.grpc_port is None:
            return True
        try:  # gRPC starts just after the HTTP server: wait until its port takes connections too
            socket.create_connection((self.host, self.grpc_port), timeout=1).close()
        except OSError:
            return False
        return True

    def __enter__(self) -> ServerProcess:
        httpx = require("httpx", "talking to the API")
        # stderr to a file, not a pipe: a server that logs a lot would block on a full pipe.
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=self._stderr, env=self.env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._stderr.seek(0)
                err = self._stderr.read().decode(errors="replace")
                raise RuntimeError(
                    f"the API server exited with code {self._process.returncode}: {err.strip()}"
                )
            try:
                if self._ready(httpx):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError("the API server did not become ready within 60 s")

    def terminate(self) -> None:
        """Send SIGTERM (a graceful stop) without waiting."""
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit; its exit status."""
        assert self._process is not None, "the server was not started"
        return self._process.wait(timeout)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
