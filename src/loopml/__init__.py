"""loopml: turn a model into a production machine-learning system.

``import loopml`` is light: heavy parts (the API, LightGBM, Dask) load when first used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# OpenMP threads that busy-wait make LightGBM 6x slower on a busy 2-core machine (measured: 31.7 s
# against 5.1 s for the same fit); passive waiting costs nothing when the cores are free. Only a
# default: an explicit OMP_WAIT_POLICY wins. Set before LightGBM (and its OpenMP runtime) loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from loopml.config import Settings, load_settings
from loopml.errors import LoopMLError

if TYPE_CHECKING:
    from loopml.project import Project

__all__ = ["LoopMLError", "Project", "Settings", "__version__", "load_settings", "open_project"]
__version__ = "0.1.0"


def open_project(path: str = ".") -> Project:
    """Open the project in ``path`` (where its ``loopml.yaml`` is)."""
    from loopml.project import Project

    return Project.open(path)


def __getattr__(name: str) -> Any:
    if name == "Project":
        from loopml.project import Project

        return Project
    raise AttributeError(f"module 'loopml' has no attribute {name!r}")
