"""Example projects shipped with loopml, each found through the ``loopml.examples`` entry-point group.

Each example is a subpackage ``loopml.examples.<name>`` holding its ``loopml.yaml``, its data
writer (a generator or shipped real data) and, for the four use cases, its demo (``demo.py``),
written only against the public API (:mod:`loopml.project`). Its ``EXAMPLE`` object
(:class:`loopml.project.Example`) is what the entry point names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopml.project import example_names, get_example

__all__ = ["REAL_DATA_DEMO", "example_names", "write_example"]

# Why a demo on the real data shipped with loopml takes neither --quick nor --seed (Example.not_taken).
REAL_DATA_DEMO = {
    "quick": "it already runs at full size in about a minute",
    "seed": "its data is real, shipped with loopml, not simulated",
}


def write_example(name: str, directory: Path, **data_options: Any) -> Path:
    """Write example ``name``'s ``loopml.yaml`` and data into ``directory``; returns the project file."""
    return get_example(name).write(Path(directory), **data_options)
