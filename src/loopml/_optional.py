"""Optional dependencies, imported only inside the function that needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from loopml.errors import MissingExtraError

__all__ = ["require"]

# import name -> (distribution name, loopml extra that brings it)
_EXTRAS: dict[str, tuple[str, str]] = {
    "lightgbm": ("lightgbm", "lgbm"),
    "fastapi": ("fastapi", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "orjson": ("orjson", "serve"),
    "httpx": ("httpx", "serve"),
    "prometheus_client": ("prometheus-client", "serve"),
    "grpc": ("grpcio", "serve"),
    "google": ("protobuf", "serve"),
    "grpc_tools": ("grpcio-tools", "test"),
    "dask": ("dask", "dask"),
    "distributed": ("distributed", "dask"),
    "optuna": ("optuna", "tune"),
    "plotly": ("plotly", "dashboard"),
    "jinja2": ("jinja2", "dashboard"),
    "redis": ("redis", "actions"),
    "pika": ("pika", "actions"),
    "nats": ("nats-py", "actions"),
    "psycopg": ("psycopg", "postgres"),
    "s3fs": ("s3fs", "s3"),
}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import an optional module or raise an error naming the extra to install.

    Examples
    --------
    >>> require("json").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist, extra = _EXTRAS.get(module.split(".")[0], (module.split(".")[0], "all"))
        why = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"{dist} is needed{why} but is not installed.",
            hint=f"Install it with: pip install 'loopml[{extra}]'",
        ) from exc
