"""Ingest on Dask equals the local ingest: the same snapshot, quarantine and counts per rule.

The source is a folder of Parquet files in several row groups, with repeated ids inside a file,
across files and against the snapshot an appending ingest starts from (``source.watermark``), and
missing values in a column the contract says is never missing.
"""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from loopml.cli import app
from loopml.errors import ConfigError
from loopml.examples import write_example
from loopml.project import Project
from loopml.validate import IngestResult, load_snapshot
from loopml.validate.datasets import load_quarantine

pytest.importorskip("distributed")

CHUNK = 700  # rows per local chunk and per Dask piece (row groups are 300 rows)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fraud example project (no data source of its own yet) and its rows, sorted by time."""
    root = tmp_path_factory.mktemp("base")
    write_example("fraud", root, days=12, n_customers=300, n_terminals=300)
    return root


def _write(folder: Path, name: str, frame: pd.DataFrame) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / name, row_group_size=300)


def _project(base: Path, root: Path, contract: Path | None = None) -> Project:
    shutil.copytree(base, root)
    config = yaml.safe_load((root / "loopml.yaml").read_text(encoding="utf-8"))
    config["source"].update(path="parts", chunk_rows=CHUNK, watermark="tx_datetime")
    config["cleaning"] = {"dedupe": "row"}
    (root / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    if contract is not None:
        shutil.copytree(contract, root / "contracts")
    return Project.open(root, environ={})


def _thirds(frame: pd.DataFrame) -> list[pd.DataFrame]:
    cut = [0, len(frame) // 3, 2 * len(frame) // 3, len(frame)]
    return [frame.iloc[a:b].reset_index(drop=True) for a, b in pairwise(cut)]


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Three days of files; the later ones repeat ids of earlier ones and miss some amounts."""
    first, second, third = _thirds(frame)
    second = pd.concat([second, second.iloc[[5, 6]]], ignore_index=True)  # ids repeated in a file
    repeat = first.iloc[[1, 400, len(first) - 2]].assign(
        tx_datetime=third["tx_datetime"].iloc[0]
    )  # across files
    third = pd.concat([third, repeat], ignore_index=True)
    third.loc[[10, len(third) // 2], "tx_amount"] = np.nan  # never missing in the contract: not_null
    return first, second, third


def _same(local: tuple[Project, IngestResult], dask: tuple[Project, IngestResult]) -> None:
    (lp, lr), (dp, dr) = local, dask
    for field in ("rows_read", "accepted", "quarantined", "quarantine_counts", "watermark", "added_columns"):
        assert getattr(dr, field) == getattr(lr, field), field
    assert dr.contract.model_dump() == lr.contract.model_dump()
    _, lf = load_snapshot(lp.store, lp.name)
    _, df = load_snapshot(dp.store, dp.name)
    pd.testing.assert_frame_equal(df, lf)
    assert dr.dataset.rows == lr.dataset.rows  # (the file's row groups follow the pieces: not its sha256)
    if lr.quarantined:
        pd.testing.assert_frame_equal(
            load_quarantine(dp.store, dr.dataset), load_quarantine(lp.store, lr.dataset)
        )


def test_dask_ingest_equals_the_local_ingest(base: Path, tmp_path: Path, dask_client: Any) -> None:
    frame = pd.read_parquet(base / "data" / "transactions.parquet").sort_values("tx_datetime")
    first, second, third = _split(frame)
    # The contract is inferred from clean rows, so that the ids are unique and amounts never missing.
    clean = _project(base, tmp_path / "clean")
    _write(clean.settings.project_dir / "parts", "a.parquet", first)
    clean.ingest()
    contract = clean.settings.project_dir / "contracts"

    projects = [_project(base, tmp_path / name, contract) for name in ("local", "dask")]
    for proj in projects:
        _write(proj.settings.project_dir / "parts", "day=1/a.parquet", first)
        _write(proj.settings.project_dir / "parts", "day=2/b.parquet", second)
    runs = [projects[0].ingest(), projects[1].ingest(dask=dask_client)]
    _same(*zip(projects, runs, strict=True))
    assert runs[1].quarantine_counts == {"duplicate_id": 2} and not runs[1].contract_created

    for proj in projects:  # a new file: only its rows past the watermark, appended to the snapshot
        _write(proj.settings.project_dir / "parts", "day=3/c.parquet", third)
    runs = [projects[0].ingest(), projects[1].ingest(dask=dask_client)]
    _same(*zip(projects, runs, strict=True))
    assert runs[1].quarantine_counts == {"duplicate_id": 3, "not_null": 2}
    assert runs[1].rows_read == len(third) and runs[1].dataset.rows == len(frame) - 2
    print(f"\nDask ingest == local ingest: {runs[1].rows_read} rows, {runs[1].quarantine_counts}")


def test_a_first_dask_ingest_infers_the_contract_from_a_sample(
    base: Path, tmp_path: Path, dask_client: Any
) -> None:
    frame = pd.read_parquet(base / "data" / "transactions.parquet").sort_values("tx_datetime")
    projects = [_project(base, tmp_path / name) for name in ("local", "dask")]
    for proj in projects:
        for i, part in enumerate(_thirds(frame)):
            _write(proj.settings.project_dir / "parts", f"{i}.parquet", part)
    local = projects[0].ingest()
    runner = CliRunner()
    dask_dir = projects[1].settings.project_dir
    result = runner.invoke(
        app, ["ingest", "--project", str(dask_dir), "--dask", dask_client.scheduler.address]
    )
    assert result.exit_code == 0, result.output
    dask = Project.open(dask_dir, environ={})
    (version, snapshot), (_, expected) = (
        load_snapshot(dask.store, "fraud"),
        load_snapshot(projects[0].store, "fraud"),
    )
    pd.testing.assert_frame_equal(snapshot, expected)  # the sample held every row here: the same contract
    assert version.rows == local.accepted == len(frame)
    assert sorted(p.name for p in (dask_dir / "contracts").iterdir()) == ["fraud.v1.yaml"]


def test_dask_ingest_refuses_a_csv_source(base: Path, tmp_path: Path, dask_client: Any) -> None:
    proj = _project(base, tmp_path / "csv")
    path = proj.settings.project_dir / "loopml.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["source"] = {"kind": "csv", "path": "data.csv"}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    pd.read_parquet(base / "data" / "transactions.parquet").head(50).to_csv(
        proj.settings.project_dir / "data.csv"
    )
    with pytest.raises(ConfigError, match="Parquet"):
        Project.open(proj.settings.project_dir, environ={}).ingest(dask=dask_client)
