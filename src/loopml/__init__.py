"""loopml: turn a model into a production machine-learning system.

``import loopml`` is light: the application layer (:class:`loopml.Project`), the settings
(:class:`loopml.Settings`, :func:`loopml.load_settings`: pydantic and YAML) and everything under them
load when first used. Process-wide settings (OpenMP's wait policy, say) are applied where a loopml
process starts (the CLI, the server, the worker), never on import.

>>> import loopml
>>> loopml.Project.__name__
'Project'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loopml.errors import LoopMLError

if TYPE_CHECKING:
    from loopml.config import Settings, load_settings
    from loopml.project import Project

__all__ = ["LoopMLError", "Project", "Settings", "__version__", "load_settings", "open_project"]
__version__ = "0.1.0"


def open_project(path: str = ".") -> Project:
    """Open the project in ``path`` (where its ``loopml.yaml`` is): :meth:`Project.open`."""
    from loopml.project import Project

    return Project.open(path)


# Each lazy name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {"Project": "loopml.project", "Settings": "loopml.config", "load_settings": "loopml.config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module 'loopml' has no attribute {name!r}")
