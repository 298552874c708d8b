"""Serving: the prediction API (FastAPI app factory, routers, model holder)."""

from __future__ import annotations

from loopml.serve.app import ADMIN_ROUTES, PREDICT_ROUTES, PROTECTED_ROUTES, PUBLIC_ROUTES, create_app
from loopml.serve.auth import OPTIONAL_ROUTES, ROUTE_GROUPS
from loopml.serve.server import BackgroundServer, ServerProcess, free_port, listen, run_server

__all__ = [
    "ADMIN_ROUTES",
    "OPTIONAL_ROUTES",
    "PREDICT_ROUTES",
    "PROTECTED_ROUTES",
    "PUBLIC_ROUTES",
    "ROUTE_GROUPS",
    "BackgroundServer",
    "ServerProcess",
    "create_app",
    "free_port",
    "listen",
    "run_server",
]
