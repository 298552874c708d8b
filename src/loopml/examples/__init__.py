"""Example projects shipped with loopml: a project file plus data made or copied locally.

Each example is a subpackage ``loopml.examples.<name>`` holding its ``loopml.yaml`` and a
``write_data(data_dir, **options)`` function that writes the example's data into ``data_dir``.
"""

from __future__ import annotations

import importlib
from importlib import resources
from pathlib import Path
from typing import Any

from loopml.config import PROJECT_FILE
from loopml.errors import ConfigError, InputError, did_you_mean

__all__ = ["EXAMPLES", "write_example"]

EXAMPLES = ("fraud", "retail", "maintenance", "forecast", "recommend")


def write_example(name: str, directory: Path, **data_options: Any) -> Path:
    """Write example ``name``'s ``loopml.yaml`` and data into ``directory``; returns the project file."""
    if name not in EXAMPLES:
        raise ConfigError(f"unknown example '{name}'; {did_you_mean(name, EXAMPLES)}")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / PROJECT_FILE
    if target.exists():
        raise InputError(f"{target} already exists; choose an empty directory or remove it.")
    template = resources.files(__name__).joinpath(name, PROJECT_FILE).read_text(encoding="utf-8")
    data_dir = directory / "data"
    data_dir.mkdir(exist_ok=True)
    importlib.import_module(f"{__name__}.{name}").write_data(data_dir, **data_options)
    target.write_text(template, encoding="utf-8")
    return target
