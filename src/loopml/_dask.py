"""One way to reach a Dask cluster, shared by batch scoring, drift and training.

``address`` is what a user writes in ``loopml.yaml`` or on the command line: a scheduler address
(``tcp://host:8786``), ``"local"`` (or ``None``) for a ``LocalCluster`` of one single-threaded worker
process per core, or an open ``distributed.Client`` (used as it is and left open).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loopml._optional import require
from loopml.errors import ConfigError

__all__ = ["LOCAL", "dask_client", "worker_count"]

LOCAL = "local"


@contextmanager
def dask_client(address: Any, purpose: str = "running on Dask", timeout_s: float = 30.0) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address`` (see the module docstring), closed on exit unless the
    caller passed it in; a scheduler not reachable within ``timeout_s`` is a :class:`ConfigError`."""
    distributed = require("distributed", purpose)
    if isinstance(address, distributed.Client):
        yield address
    elif address in (None, "", LOCAL):
        with (
            distributed.LocalCluster(
                n_workers=os.cpu_count() or 1,
                threads_per_worker=1,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
    else:
        try:
            client = distributed.Client(address, timeout=timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at '{address}' ({type(exc).__name__}); start one "
                "(`dask scheduler`) or fix the address (tcp://host:8786, or 'local')."
            ) from None
        with client:
            yield client


def worker_count(client: Any) -> int:
    """How many workers the client's scheduler has now (at least 1)."""
    return max(1, len(client.scheduler_info().get("workers", {})))
