"""Batch scoring from and into SQL: a table or query in, a table out, each equal to Parquet -> Parquet.

SQLite always; PostgreSQL too when ``LOOPML_TEST_POSTGRES_URL`` is set (the ``store_url`` fixture).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from forecast_support import SERIES, forecast_project, project_file
from loopml.batch import score_file
from loopml.batch.outputs import open_output
from loopml.batch.score import open_input
from loopml.cli import app
from loopml.errors import DataError, InputError
from loopml.project import Project
from loopml.serve import free_port

OUTPUT_COLUMNS = ["prediction_id", "transaction_id", "score", "label", "model_version"]
SCORES = ["transaction_id", "score", "label", "model_version"]
runner = CliRunner()


def engine_for(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed)


def write_table(url: str, name: str, frame: pd.DataFrame) -> None:
    engine = engine_for(url)
    with engine.begin() as conn:
        frame.to_sql(name, conn, index=False, if_exists="replace")
    engine.dispose()


def read_table(url: str, name: str) -> pd.DataFrame:
    engine = engine_for(url)
    with engine.connect() as conn:
        frame = pd.read_sql_query(sa.text(f'SELECT * FROM "{name}"'), conn)
    engine.dispose()
    return frame


def same_scores(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same rows in the same order with the same scores, bit for bit; fresh prediction ids."""
    assert list(got.columns) == OUTPUT_COLUMNS
    pd.testing.assert_frame_equal(
        got[SCORES].reset_index(drop=True), expected[SCORES], check_exact=True, check_dtype=False
    )
    assert got["prediction_id"].is_unique
    assert not set(got["prediction_id"]) & set(expected["prediction_id"])


@pytest.fixture(scope="module")
def reference(batch_project: Project, holdout_parquet: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Parquet in, Parquet out: the scores every SQL path must give."""
    output = tmp_path_factory.mktemp("reference") / "scored.parquet"
    model = batch_project.models.load()
    score_file(batch_project.store, model, holdout_parquet, output, log_predictions=False)
    frame = pd.read_parquet(output)
    assert len(frame) >= 290 and frame["score"].nunique() > 10
    return frame


@pytest.fixture
def db_url(store_url: str) -> str:
    """A database for the test's tables: a new SQLite file, or a fresh PostgreSQL schema."""
    return store_url


def test_sql_table_in_parquet_out(
    batch_project: Project, holdout_rows: pd.DataFrame, reference: pd.DataFrame, db_url: str, tmp_path: Path
) -> None:
    write_table(db_url, "transactions", holdout_rows)
    result = batch_project.predictions.predict_file(
        db_url, tmp_path / "out.parquet", input_table="transactions"
    )
    assert result.rows == len(holdout_rows) and result.table is None
    same_scores(pd.read_parquet(result.output), reference)


def test_parquet_in_sql_table_out(
    batch_project: Project, holdout_parquet: Path, reference: pd.DataFrame, db_url: str
) -> None:
    result = batch_project.predictions.predict_file(holdout_parquet, db_url, output_table="scores")
    assert result.rows == len(reference) and result.table == "scores" and result.model_version == 1
    assert make_url(result.output).password in (None, "***")  # shown, never with the password
    same_scores(read_table(db_url, "scores"), reference)


def test_sql_query_in_sql_out_in_small_chunks(
    batch_project: Project, holdout_rows: pd.DataFrame, reference: pd.DataFrame, db_url: str
) -> None:
    write_table(db_url, "transactions", holdout_rows.assign(row_no=range(len(holdout_rows))))
    query = "SELECT * FROM transactions ORDER BY row_no"
    model = batch_project.models.load()
    result = score_file(
        batch_project.store,
        model,
        open_input(db_url, query=query),
        open_output(db_url, table="chunked"),
        chunk_rows=7,
        log_predictions=False,
    )
    assert result.rows == len(reference)
    same_scores(read_table(db_url, "chunked"), reference)


def test_relative_sqlite_paths_start_at_the_project(
    batch_project: Project, holdout_rows: pd.DataFrame, reference: pd.DataFrame
) -> None:
    directory = batch_project.settings.project_dir
    write_table(f"sqlite:///{directory / 'data' / 'rows.db'}", "transactions", holdout_rows)
    url = "sqlite:///data/rows.db"
    batch_project.predictions.predict_file(
        url, url, input_table="transactions", output_table="relative", if_exists="replace"
    )
    same_scores(read_table(f"sqlite:///{directory / 'data' / 'rows.db'}", "relative"), reference)


def test_if_exists_fail_append_replace(
    batch_project: Project, holdout_parquet: Path, reference: pd.DataFrame, sqlite_url: str
) -> None:
    n = len(reference)
    batch_project.predictions.predict_file(holdout_parquet, sqlite_url, output_table="scores")
    first = read_table(sqlite_url, "scores")
    with pytest.raises(InputError, match=r"'scores' already exists .*--if-exists append"):
        batch_project.predictions.predict_file(holdout_parquet, sqlite_url, output_table="scores")
    assert len(read_table(sqlite_url, "scores")) == n  # nothing written, nothing scored

    batch_project.predictions.predict_file(
        holdout_parquet, sqlite_url, output_table="scores", if_exists="append"
    )
    appended = read_table(sqlite_url, "scores")
    assert len(appended) == 2 * n and appended["prediction_id"].is_unique
    same_scores(appended.iloc[n:], reference)
    assert appended.iloc[:n]["prediction_id"].tolist() == first["prediction_id"].tolist()

    write_table(sqlite_url, "other", pd.DataFrame({"x": [1]}))
    with pytest.raises(InputError, match="has no column 'prediction_id'"):
        batch_project.predictions.predict_file(
            holdout_parquet, sqlite_url, output_table="other", if_exists="append"
        )
    batch_project.predictions.predict_file(
        holdout_parquet, sqlite_url, output_table="other", if_exists="replace"
    )
    same_scores(read_table(sqlite_url, "other"), reference)


def test_replace_in_chunks_replaces_a_table_of_other_columns(
    batch_project: Project, holdout_parquet: Path, reference: pd.DataFrame, sqlite_url: str
) -> None:
    """The first chunk recreates the table; later chunks append to it, not judged by the old columns."""
    write_table(sqlite_url, "old_layout", pd.DataFrame({"x": [1]}))
    model = batch_project.models.load()
    output = open_output(sqlite_url, table="old_layout", if_exists="replace")
    result = score_file(
        batch_project.store, model, holdout_parquet, output, chunk_rows=7, log_predictions=False
    )
    assert result.rows == len(reference) > 7
    same_scores(read_table(sqlite_url, "old_layout"), reference)


def test_dask_and_sql_is_an_input_error(
    batch_project: Project, holdout_parquet: Path, sqlite_url: str
) -> None:
    with pytest.raises(InputError, match="leave out --dask"):
        batch_project.predictions.predict_file(holdout_parquet, sqlite_url, output_table="t", dask="local")


def test_sql_output_keeps_each_kind_of_column(db_url: str) -> None:
    """Text, integers, floats with NaN, booleans, times and a multiclass model's probabilities (JSON)."""
    frame = pd.DataFrame(
        {
            "prediction_id": ["a", "b", None],
            "n": [1, 2, 3],
            "score": [0.25, float("nan"), 1e-300],
            "flag": [True, False, True],
            "at": pd.Series([pd.Timestamp("2024-01-01 10:00:00.123456"), pd.NaT, pd.Timestamp("2024-03-01")]),
            "probabilities": [{"x": 0.5, "y": 0.5}, {"x": 1.0, "y": 0.0}, None],
        }
    )
    output = open_output(db_url, table="kinds")
    try:
        output.write(frame.iloc[:2])
        output.write(frame.iloc[2:])
    finally:
        output.close()
    got = read_table(db_url, "kinds")
    assert got["prediction_id"].tolist()[:2] == ["a", "b"] and pd.isna(got["prediction_id"][2])
    assert got["n"].tolist() == [1, 2, 3] and got["flag"].astype(bool).tolist() == [True, False, True]
    assert got["score"][0] == 0.25 and pd.isna(got["score"][1]) and got["score"][2] == 1e-300
    at = pd.to_datetime(got["at"], format="ISO8601")  # SQLite keeps times as text
    assert at.tolist()[::2] == frame["at"].tolist()[::2] and pd.isna(at[1])
    probabilities = [json.loads(v) if isinstance(v, str) else v for v in got["probabilities"]]
    assert probabilities[:2] == frame["probabilities"].tolist()[:2] and pd.isna(probabilities[2])


# --- the command line --------------------------------------------------------------------------------------


def invoke(project: Project, *args: str) -> Result:
    return runner.invoke(app, ["predict", "--project", str(project.settings.project_dir), *args])


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> str:
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_cli_sql_in_sql_out(
    batch_project: Project, holdout_rows: pd.DataFrame, reference: pd.DataFrame, sqlite_url: str
) -> None:
    write_table(sqlite_url, "transactions", holdout_rows)
    args = ["-i", sqlite_url, "--input-table", "transactions", "-o", sqlite_url, "--output-table", "scored"]
    result = invoke(batch_project, *args, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload == {
        "rows": len(reference),
        "output": sqlite_url,
        "table": "scored",
        "model_version": 1,
        "partitions": 1,
        "quarantined": 0,  # every row keeps the data contract
        "quarantine": None,
        "quarantine_counts": {},
        "scored_as_missing": {},
    }
    same_scores(read_table(sqlite_url, "scored"), reference)
    again = invoke(batch_project, *args)
    assert_one_line_error(again, 4, "'scored' already exists", "--if-exists")
    replaced = invoke(batch_project, *args, "--if-exists", "replace")
    assert replaced.exit_code == 0, replaced.output
    flat = "".join(replaced.stdout.split())  # rich wraps long lines, even inside the path
    assert f"intotablescoredat{sqlite_url}" in flat


DOWN = "postgresql://u:pw@127.0.0.1:{port}/x"  # a closed port


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ("-i {db}", ["is a database URL", "exactly one of --input-table"]),
        ("-i {db} --input-table t --input-query 'SELECT 1'", ["exactly one of --input-table"]),
        ("-i {file} --input-table t", ["is a file", "database URL as --input"]),
        ("-i {db} --input-table nope", ["(table 'nope') failed", "no such table", "--input-table"]),
        ("-i {db} --input-query 'SELEC 1'", ["(query) failed", "syntax error", "--input-query"]),
        ("-i nosuchdb://u:pw@host/x --input-table t", ["input 'nosuchdb://u:***@host/x'", "not a database"]),
        ("-i sqlite:///missing/rows.db --input-table t", ["missing/rows.db' does not exist"]),
        (f"-i {DOWN} --input-table t", ["u:***@", "failed:", "Connection refused", "reachable"]),
        ("-i {file} -o {db}", ["is a database URL", "--output-table NAME"]),
        ("-i {file} -o {dir}/s.parquet --output-table t", ["is a file", "as --output"]),
        (f"-i {{file}} -o {DOWN} --output-table t", ["cannot be reached", "u:***@", "--output"]),
        ("-i {file} -o {dir}/s.parquet --if-exists append", ["applies to an --output-table"]),
        ("-i {file} -o {db} --output-table t --if-exists merge", ["one of fail, append, replace"]),
        ("-i {file} -o {db} --output-table t --dask local", ["leave out --dask"]),
    ],
)
def test_cli_bad_sql_arguments_are_one_line_errors(
    batch_project: Project,
    holdout_parquet: Path,
    tmp_path: Path,
    args: str,
    fragments: list[str],
) -> None:
    db = f"sqlite:///{tmp_path / 'rows.db'}"
    write_table(db, "present", pd.DataFrame({"x": [1]}))
    values = {"db": db, "file": str(holdout_parquet), "dir": str(tmp_path), "port": str(free_port())}
    filled = [a.format(**values) for a in shlex.split(args)]
    if "-o" not in filled:
        filled += ["-o", str(tmp_path / "scored.parquet")]
    line = assert_one_line_error(invoke(batch_project, *filled), 4, *fragments)
    assert "pw" not in line  # a password is never shown
    assert not (tmp_path / "scored.parquet").exists() and not (tmp_path / "s.parquet").exists()


def test_sql_errors_are_data_errors_in_the_api(batch_project: Project, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'rows.db'}"
    write_table(db, "present", pd.DataFrame({"x": [1]}))
    with pytest.raises(DataError, match="no such table: nope"):
        batch_project.predictions.predict_file(db, tmp_path / "out.csv", input_table="nope")
    with pytest.raises(InputError, match="tx_amount"):  # the contract checks SQL rows as it checks a file's
        batch_project.predictions.predict_file(db, tmp_path / "out.csv", input_table="present")


# --- batch forecasts ---------------------------------------------------------------------------------------

FORECAST_PROJECT = project_file()


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A small demand forecast model: two countries, three items, 26 weeks of daily lines."""
    series = SERIES[:3]  # two countries, three items
    project = forecast_project(tmp_path_factory.mktemp("forecast-sql"), FORECAST_PROJECT, series=series)
    return project


def test_batch_forecasts_into_a_table(forecaster: Project, db_url: str, tmp_path: Path) -> None:
    expected = pd.read_parquet(forecaster.predictions.predict_file(None, tmp_path / "f.parquet").output)
    result = forecaster.predictions.predict_file(None, db_url, output_table="forecasts")
    assert result.rows == len(expected) > 0 and result.table == "forecasts"
    got = read_table(db_url, "forecasts")
    assert list(got.columns) == list(expected.columns)
    for column in ("origin", "period"):
        got[column] = pd.to_datetime(got[column]).astype(expected[column].dtype)
    columns = [c for c in expected.columns if c != "prediction_id"]
    pd.testing.assert_frame_equal(got[columns], expected[columns], check_exact=True, check_dtype=False)
    with pytest.raises(InputError, match="'forecasts' already exists"):
        forecaster.predictions.predict_file(None, db_url, output_table="forecasts")
