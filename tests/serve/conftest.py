"""Fixtures for the prediction API tests: one small fraud project, trained once per module."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from loopml.examples import write_example
from loopml.project import Project

TEMPLATE_TREES = "n_estimators: 200"


def write_fast_project(directory: Path, n_estimators: int = 20) -> Path:
    """The fraud example with 30 simulated days and a small single-threaded LightGBM.

    One thread: on a busy machine LightGBM's OpenMP threads spin against each other (fits went from
    0.3 s to 12 s on two loaded cores).
    """
    write_example("fraud", directory, days=30)
    config = directory / "loopml.yaml"
    text = config.read_text(encoding="utf-8")
    assert TEMPLATE_TREES in text, "the fraud template changed; update the test helper"
    fast = text.replace(TEMPLATE_TREES, f"n_estimators: {n_estimators}\n    n_jobs: 1")
    config.write_text(fast, encoding="utf-8")
    return directory


def set_trees(directory: Path, n_estimators: int) -> None:
    """Change the number of trees in a project's loopml.yaml (so that a retrain gives a new artifact)."""
    config = directory / "loopml.yaml"
    lines = [
        f"    n_estimators: {n_estimators}" if line.strip().startswith("n_estimators:") else line
        for line in config.read_text(encoding="utf-8").splitlines()
    ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def open_project(directory: Path) -> Project:
    """Open a project ignoring LOOPML_* variables of the environment (the stores stay in the directory)."""
    return Project.open(directory, environ={})


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fraud project, ingested and trained once (version 1 is the champion).

    Nothing opens this directory afterwards (its SQLite file is closed), so it can be copied safely.
    """
    directory = write_fast_project(tmp_path_factory.mktemp("template") / "proj")
    project = open_project(directory)
    project.ingest()
    outcome = project.train()
    assert outcome.version.version == 1 and outcome.promoted
    project.store.engine.dispose()
    return directory


@pytest.fixture(scope="module")
def api_project(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A copy of the trained project, opened (shared by the read-only tests of a module)."""
    directory = tmp_path_factory.mktemp("api") / "proj"
    shutil.copytree(trained_template, directory)
    return open_project(directory)


@pytest.fixture(scope="module")
def two_version_dir(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained project with version 2 registered (21 trees, not promoted); champion is 1."""
    directory = tmp_path_factory.mktemp("versions") / "proj"
    shutil.copytree(trained_template, directory)
    set_trees(directory, 21)
    project = open_project(directory)
    outcome = project.train()
    project.store.engine.dispose()
    assert outcome.version.version == 2 and not outcome.promoted
    return directory


@pytest.fixture
def make_fast_project() -> Callable[[Path], Path]:
    """``write_fast_project`` as a fixture (test modules do not import conftest)."""
    return write_fast_project


@pytest.fixture
def copy_project(tmp_path: Path) -> Callable[[Path], Project]:
    """Copy a project directory (stores included) into this test's tmp_path and open the copy."""

    def copy(source: Path) -> Project:
        target = tmp_path / "copy"
        shutil.copytree(source, target)
        return open_project(target)

    return copy
