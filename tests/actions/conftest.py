"""Fixtures for the actions tests: a real store, a real case receiver, and settings that point at it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from actions_support import SECRET_ENV
from sqlalchemy import Engine

from loopml.examples.fraud.receiver import CaseReceiver, new_secret
from loopml.store import create_store_engine


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh signing secret, also in the environment variable the webhook endpoint names."""
    value = new_secret()
    monkeypatch.setenv(SECRET_ENV, value)
    return value


@pytest.fixture
def receiver(secret: str, tmp_path: Path) -> Iterator[CaseReceiver]:
    with CaseReceiver(secret=secret, port=0, db_path=tmp_path / "cases.db") as r:
        yield r


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite store migrated once per session; each test gets a copy (migrating costs ~1 s)."""
    path = tmp_path_factory.mktemp("template") / "loopml.db"
    create_store_engine(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture
def engine(migrated_store: Path, tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite metadata store at head, in this test's directory."""
    path = tmp_path / "store" / "loopml.db"
    path.parent.mkdir()
    shutil.copyfile(migrated_store, path)
    eng = create_store_engine(f"sqlite:///{path}")
    yield eng
    eng.dispose()
