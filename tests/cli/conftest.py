"""Fixtures for the command-line tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def _no_loopml_environment() -> Iterator[None]:
    """Unset LOOPML_* overrides (but not LOOPML_TEST_*), so every store stays inside its project."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("LOOPML_") and not name.startswith("LOOPML_TEST_"):
                mp.delenv(name)
        yield
