"""Example projects: a ``loopml.yaml``, a data writer and (optionally) a demo, found by name.

Examples are plugins of the entry-point group ``loopml.examples``: each entry point names an
:class:`Example` object (``loopml.examples.fraud:EXAMPLE``), so a third-party package adds one with
its own metadata, and ``loopml init --example NAME`` / ``loopml demo NAME`` find it. The shipped
examples live in :mod:`loopml.examples`, each written only against this public API.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from loopml._plugins import available, load_object, resolve
from loopml.errors import ConfigError, InputError, did_you_mean

__all__ = ["Demo", "Example", "example_names", "get_example"]


class Demo(Protocol):
    """An example's demo: ``run`` builds the project in an empty ``directory`` and runs its whole
    loop, returning a JSON-able summary; ``render`` prints that summary for people."""

    def run(self, directory: Path, **options: Any) -> dict[str, Any]: ...

    def render(self, summary: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Example:
    """One example project.

    ``package`` holds its ``loopml.yaml``; ``write_data`` (``"module:function"``, called with the
    project's ``data`` folder and the data options) writes its data; ``demo`` (``"module"`` with
    ``run`` and ``render``) runs its loop end to end. ``demo_options`` are the ``loopml demo``
    options the demo takes, ``not_taken`` says for each other one why not (shown when given).
    """

    name: str
    summary: str
    package: str
    write_data: str
    demo: str | None = None
    demo_options: tuple[str, ...] = ()
    not_taken: Mapping[str, str] = field(default_factory=dict)

    def write(self, directory: Path, **data_options: Any) -> Path:
        """Write the example's ``loopml.yaml`` and data into ``directory`` (created if missing; it
        must not hold a project yet); returns the project file."""
        # imported here, so that listing the examples (`loopml init --help`) stays light
        from loopml.config import PROJECT_FILE, with_schema_header, write_schema

        target = directory / PROJECT_FILE
        if target.exists():
            raise InputError(f"{target} already exists; choose an empty directory or remove it.")
        directory.mkdir(parents=True, exist_ok=True)
        template = resources.files(self.package).joinpath(PROJECT_FILE).read_text(encoding="utf-8")
        data_dir = directory / "data"
        data_dir.mkdir(exist_ok=True)
        writer: Callable[..., None] = load_object(self.write_data, what=f"example '{self.name}' data writer")
        writer(data_dir, **data_options)
        # The example points its editor at the package's schema; the project at its own copy.
        target.write_text(with_schema_header(template), encoding="utf-8")
        write_schema(directory)
        return target

    def load_demo(self) -> Demo:
        """The demo module (an :class:`InputError` for an example that has none)."""
        if self.demo is None:
            demos = [n for n in example_names() if get_example(n).demo is not None]
            raise InputError(
                f"example '{self.name}' has no demo (it is data only); demos: {', '.join(demos)}."
            )
        try:
            module: Demo = importlib.import_module(self.demo)
        except ImportError as exc:
            raise ConfigError(
                f"example '{self.name}': cannot import its demo '{self.demo}' ({exc})."
            ) from exc
        return module

    def check_options(self, options: Mapping[str, Any]) -> None:
        """A one-line :class:`InputError` for a ``loopml demo`` option this demo does not take."""
        for option in options:
            if option not in self.demo_options:
                why = self.not_taken.get(option, f"it takes {', '.join(self.demo_options) or 'no options'}")
                raise InputError(
                    f"--{option} does not apply to the {self.name} demo: {why}. Drop --{option}."
                )


def example_names() -> list[str]:
    """Every installed example's name (loads none of them)."""
    return list(available("examples"))


def get_example(name: str) -> Example:
    """The example called ``name``; an unknown name suggests the nearest."""
    if name not in available("examples"):
        raise ConfigError(f"unknown example '{name}'; {did_you_mean(name, example_names())}")
    found = resolve("examples", name)
    if not isinstance(found, Example):
        raise ConfigError(f"example plugin '{name}' is a {type(found).__name__}, not a loopml Example.")
    return found
