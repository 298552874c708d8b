"""Fixtures shared by the whole test suite.

- ``sqlite_url``: a fresh SQLite file URL under the test's ``tmp_path``.
- ``postgres_url``: a URL for the PostgreSQL in ``LOOPML_TEST_POSTGRES_URL`` whose connections use a
  fresh schema (``t_<uuid hex>``, dropped with CASCADE afterwards); skips when the variable is unset.
- ``store_url``: parametrized over both backends (the PostgreSQL case is marked ``postgres``).
- ``tiny_project``: a small fraud example project directory (30 simulated days).
- ``dask_cluster`` / ``dask_client``: two single-threaded in-process Dask workers on a TCP address (so a
  project file or the CLI can name the scheduler), one per test module.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from loopml.examples import write_example

POSTGRES_ENV = "LOOPML_TEST_POSTGRES_URL"


def _psycopg_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL for a new SQLite file (not created yet) in this test's temporary directory."""
    return f"sqlite:///{tmp_path / 'store' / 'loopml.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL isolated in its own schema; the schema is dropped after the test."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests skipped")
    schema = f"t_{uuid.uuid4().hex}"
    admin = sa.create_engine(_psycopg_url(base))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        parsed = make_url(base)
        options = " ".join(filter(None, [parsed.query.get("options"), f"-csearch_path={schema}"]))
        yield parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        try:
            with admin.begin() as conn:
                # Do not hang forever on a connection a test forgot to close.
                conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The metadata store URL for each backend: SQLite always, PostgreSQL when configured."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A fraud example project (``loopml.yaml`` + ``data/transactions.parquet``, 30 days); its directory."""
    directory = tmp_path / "proj"
    write_example("fraud", directory, days=30)
    return directory


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    """Two single-threaded workers in this process, on TCP (skips without the ``dask`` extra)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        dashboard_address=None,
        silence_logs=50,
    ) as local:
        yield local


@pytest.fixture(scope="module")
def dask_client(dask_cluster: Any) -> Iterator[Any]:
    """A client of :func:`dask_cluster`."""
    distributed = pytest.importorskip("distributed")
    with distributed.Client(dask_cluster) as client:
        yield client
