"""The ``Examples`` blocks in docstrings run, so the documentation cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import loopml

PACKAGE_DIR = Path(loopml.__file__).parent
WITH_EXAMPLES = sorted(
    "loopml." + ".".join(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    for path in PACKAGE_DIR.rglob("*.py")
    if "migrations" not in path.parts and ">>> " in path.read_text(encoding="utf-8")
)


def test_there_are_examples_to_run() -> None:
    assert len(WITH_EXAMPLES) >= 3, WITH_EXAMPLES


@pytest.mark.parametrize("module_name", WITH_EXAMPLES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name.removesuffix(".__init__"))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"
