"""Serving: the prediction API (FastAPI app factory, routers, model holder)."""

from __future__ import annotations

from loopml.serve.app import PROTECTED_ROUTES, PUBLIC_ROUTES, create_app
from loopml.serve.server import BackgroundServer, ServerProcess, free_port

__all__ = [
    "PROTECTED_ROUTES",
    "PUBLIC_ROUTES",
    "BackgroundServer",
    "ServerProcess",
    "create_app",
    "free_port",
]
