"""Batch scoring enforces the model's data contract: a row that breaks it is not scored, it goes to a
quarantine output beside the scored one with the rule, the column and the value; nothing is lost.

A machine-failure project (tests/contract_support.py) scores a CSV of new readings, a few of them
broken in each way a file can break the contract.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from contract_support import TEMPERATURE, WEAR, machine_rows, machines_project
from loopml.cli import app
from loopml.project import Project

# (row, column, bad value, rule): each row breaks one rule.
BROKEN = [
    (3, "Type", "Q", "category"),
    (10, TEMPERATURE, 5000.0, "range"),
    (11, TEMPERATURE, -3.0, "range"),
    (20, TEMPERATURE, "abc", "type"),
    (35, "Product ID", "X1", "pattern"),
    (36, "Type", None, "not_null"),
    (50, "when", "yesterday", "type"),
    (51, WEAR, 2.5, "type"),
    (77, "UDI", "../../etc/passwd", "type"),
]
ROWS = 120


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("machines") / "proj"
    machines_project(directory).store.engine.dispose()
    return directory


@pytest.fixture(scope="module")
def clean_rows() -> pd.DataFrame:
    return machine_rows(ROWS, seed=11, first_id=50_000).drop(columns="failure")


@pytest.fixture(scope="module")
def messy_csv(clean_rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = clean_rows.astype(object)
    for row, column, value, _ in BROKEN:
        frame.loc[row, column] = value
    path = tmp_path_factory.mktemp("input") / "readings.csv"
    frame.to_csv(path, index=False)
    return path


def copy_of(trained: Path, target: Path, **sections: dict[str, object]) -> Project:
    import shutil

    shutil.copytree(trained, target)
    if sections:
        config = yaml.safe_load((target / "loopml.yaml").read_text(encoding="utf-8"))
        for name, keys in sections.items():
            config.setdefault(name, {}).update(keys)
        (target / "loopml.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return Project.open(target, environ={})


def test_rows_that_break_the_contract_are_quarantined_and_nothing_is_lost(
    trained: Path, messy_csv: Path, clean_rows: pd.DataFrame, tmp_path: Path
) -> None:
    project = copy_of(trained, tmp_path / "p")
    output = tmp_path / "out" / "scored.parquet"
    result = project.predictions.predict_file(messy_csv, output, log_predictions=False)
    assert result.rows + result.quarantined == ROWS
    assert result.quarantined == len(BROKEN)
    assert result.quarantine == str(tmp_path / "out" / "scored.quarantine.parquet")
    assert result.quarantine_counts == {"category": 1, "range": 2, "type": 4, "pattern": 1, "not_null": 1}
    quarantined = pd.read_parquet(result.quarantine)
    assert [(r, c, rule) for r, c, _, rule in BROKEN] == list(
        zip(quarantined["_row"], quarantined["_column"], quarantined["_rule"], strict=True)
    )
    shown = {"Q", "5000.0", "-3.0", "abc", "X1", "<NA>", "yesterday", "2.5", "../../etc/passwd"}
    assert set(quarantined["_value"]) == shown
    assert set(quarantined.columns) >= {*clean_rows.columns, "_row", "_rule", "_column", "_value"}
    # The rows kept are scored as they are when scored alone, and never the broken ones.
    scored = pd.read_parquet(output)
    kept = clean_rows.drop(index=[r for r, *_ in BROKEN]).reset_index(drop=True)
    assert scored["UDI"].tolist() == kept["UDI"].tolist()
    alone = project.models.load().predict_frame(kept, observe=False)
    assert scored["score"].tolist() == [float(s) for s in alone]


def test_a_clean_file_has_no_quarantine(trained: Path, clean_rows: pd.DataFrame, tmp_path: Path) -> None:
    project = copy_of(trained, tmp_path / "p")
    source = tmp_path / "clean.parquet"
    clean_rows.to_parquet(source, index=False)
    result = project.predictions.predict_file(source, tmp_path / "scored.csv", log_predictions=False)
    assert (result.rows, result.quarantined, result.quarantine, result.quarantine_counts) == (
        ROWS,
        0,
        None,
        {},
    )
    assert not (tmp_path / "scored.quarantine.parquet").exists()


def test_unknown_categories_scored_as_missing_are_counted(
    trained: Path, clean_rows: pd.DataFrame, tmp_path: Path
) -> None:
    project = copy_of(trained, tmp_path / "p", contract={"on_unknown_category": "missing"})
    frame = clean_rows.copy()
    frame.loc[[4, 9], "Type"] = "Q"
    source = tmp_path / "rows.parquet"
    frame.to_parquet(source, index=False)
    result = project.predictions.predict_file(source, tmp_path / "scored.parquet", log_predictions=False)
    assert (result.rows, result.quarantined, result.scored_as_missing) == (ROWS, 0, {"Type": 2})
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    as_missing = frame.astype({"Type": object})
    as_missing.loc[[4, 9], "Type"] = None
    expected = project.models.load().predict_frame(as_missing, observe=False)
    assert scored["score"].tolist() == [float(s) for s in expected]


def test_a_database_output_gets_a_quarantine_table(trained: Path, messy_csv: Path, tmp_path: Path) -> None:
    project = copy_of(trained, tmp_path / "p")
    url = f"sqlite:///{tmp_path / 'scores.db'}"
    result = project.predictions.predict_file(messy_csv, url, output_table="scores", log_predictions=False)
    assert result.quarantine == f"scores_quarantine at {url}"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        scored = conn.execute(sa.text("SELECT COUNT(*) FROM scores")).scalar_one()
        rules = conn.execute(sa.text("SELECT _rule FROM scores_quarantine ORDER BY _row")).scalars().all()
    engine.dispose()
    assert scored == result.rows == ROWS - len(BROKEN)
    assert rules == [rule for *_, rule in BROKEN]


def test_loopml_predict_reports_the_quarantine(trained: Path, messy_csv: Path, tmp_path: Path) -> None:
    copy_of(trained, tmp_path / "p").store.engine.dispose()
    output = tmp_path / "scored.parquet"
    args = ["predict", "-i", str(messy_csv), "-o", str(output), "--project", str(tmp_path / "p")]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["rows"], payload["quarantined"]) == (ROWS - len(BROKEN), len(BROKEN))
    assert payload["quarantine"] == str(tmp_path / "scored.quarantine.parquet")
    assert payload["quarantine_counts"]["type"] == 4
    text = runner.invoke(app, args)
    assert text.exit_code == 0, text.output
    words = " ".join(text.stdout.split())  # Rich wraps lines (long paths anywhere)
    assert f"Quarantined {len(BROKEN)} rows that break the data contract" in words
    assert "(category 1, not_null 1, pattern 1, range 2, type 4)" in words
    assert str(tmp_path / "scored.quarantine.parquet") in "".join(text.stdout.split())


def test_dask_batch_quarantines_the_same_rows(
    trained: Path, messy_csv: Path, tmp_path: Path, dask_client: object
) -> None:
    project = copy_of(trained, tmp_path / "p")
    source = tmp_path / "rows.parquet"
    pd.read_csv(messy_csv, dtype=str).to_parquet(source, index=False)  # text, as a CSV's
    local = project.predictions.predict_file(source, tmp_path / "local.parquet", log_predictions=False)
    on_dask = project.predictions.predict_file(
        source, tmp_path / "parts", dask=dask_client, log_predictions=False
    )
    assert (on_dask.rows, on_dask.quarantined) == (local.rows, local.quarantined) == (ROWS - 9, 9)
    assert on_dask.quarantine == str(tmp_path / "parts.quarantine.parquet")
    assert pd.read_parquet(on_dask.quarantine).equals(pd.read_parquet(str(local.quarantine)))
    scored = pd.read_parquet(tmp_path / "parts").sort_values("UDI")["score"].tolist()
    assert scored == pd.read_parquet(tmp_path / "local.parquet").sort_values("UDI")["score"].tolist()
