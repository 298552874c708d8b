"""Process-wide settings, applied where a loopml process starts (the CLI, the server, the worker),
never at import: a library that changes its host's environment on import surprises everyone else."""

from __future__ import annotations

import os

__all__ = ["configure_process"]

# OpenMP threads that busy-wait make LightGBM 6x slower on a busy 2-core machine (measured: 31.7 s
# against 5.1 s for the same fit); passive waiting costs nothing when the cores are free. Only
# defaults: a value already in the environment wins. They must be set before LightGBM (and its
# OpenMP runtime) loads, and child processes (Dask workers, spawned trainers) inherit them.
_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def configure_process() -> None:
    """Set loopml's process defaults (see ``_DEFAULTS``) where the environment has none."""
    for name, value in _DEFAULTS.items():
        os.environ.setdefault(name, value)
