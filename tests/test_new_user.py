"""A new user, end to end, on a file of their own: every step a real command, as they would type it.

The data is scikit-learn's bundled wine set (no download), which is none of loopml's examples, written
as a CSV the way real exports look: an id, a time of tasting, column names with units in brackets, a
text category (``Type``: L/M/H, from the hue's terciles) and a binary target (``barolo``: the first
of the three cultivars). The rows are shuffled (the bundled set is sorted by class) and split by time:
``clean.csv`` holds the history a project is started from; ``messy.csv`` is the next batch, its good
rows mixed with bad rows of five kinds (a text value in a number or time column, an empty required
value, an id already in the data set, a number far outside the inferred range, an unknown category),
each counted here so that the ingest's counts can be compared with the numbers planted.

1. ``loopml init --from clean.csv`` says the task it inferred; a misspelled ``--target``, ``--id`` or
   ``--time`` is exit code 2 and one ``did you mean`` line, and writes nothing.
2. ``loopml check`` passes; ``loopml ingest`` takes the clean file whole, then ``ingest --input
   messy.csv`` counts every bad row by rule (accepted + quarantined == rows read, nothing lost), and
   ``loopml data quarantine`` lists them with the rule and the column (the bracketed names shown).
3. ``loopml train --json`` gives the selection and the warnings.
4. ``loopml serve`` (a real child process, real HTTP): a good record is answered with its id; an
   unknown category, an out-of-range value, an extra field and text in a number field are each a
   4xx naming the field, the value and the rule.
5. ``explain=true``: base value plus contributions is the raw score, whose sigmoid is the score;
   the contributions are named by the user's columns, brackets kept.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from sklearn.datasets import load_wine
from typer.testing import CliRunner

from loopml.cli import app
from loopml.project import Project

ID, TIME, TARGET, TYPE = "wine_id", "tasted_at", "barolo", "Type"
ALCOHOL, MAGNESIUM = "alcohol [%]", "magnesium [mg/L]"
PROLINE, COLOR = "proline [mg/L]", "color intensity [AU]"  # '[mg/L]' is Rich markup unless escaped
UNITS = {"alcohol": ALCOHOL, "magnesium": MAGNESIUM, "proline": PROLINE, "color_intensity": COLOR}
HISTORY_SHARE = 0.75  # the oldest rows are clean.csv; the newest are the good rows of messy.csv

# The bad rows of messy.csv: (rule, column, value, how many). Each row breaks exactly one rule.
BAD_ROWS: tuple[tuple[str, str, Any, int], ...] = (
    ("type", MAGNESIUM, "lots", 3),  # text in a number column
    ("type", TIME, "soon", 2),  # text in the time column
    ("not_null", ALCOHOL, None, 4),  # an empty required value
    ("duplicate_id", ID, "history", 3),  # an id already ingested from clean.csv
    ("range", PROLINE, 168_000.0, 2),  # 100 times the largest proline of the data
    ("range", COLOR, -3.5, 1),  # below the inferred minimum 0
    ("category", TYPE, "Q", 3),  # a category the contract never saw
)


def planted() -> dict[str, int]:
    """The bad rows planted per rule, as the ingest must count them."""
    counts = Counter[str]()
    for rule, _, _, count in BAD_ROWS:
        counts[rule] += count
    return dict(counts)


runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _no_loopml_environment() -> Iterator[None]:
    """Unset LOOPML_* overrides (LOOPML_TEST_* kept), so every store stays inside the project."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("LOOPML_") and not name.startswith("LOOPML_TEST_"):
                mp.delenv(name)
        yield


def loopml(*args: str | Path, code: int = 0) -> Result:
    """``loopml ARGS`` through the real Typer app; its exit code must be ``code``."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    return result


def loopml_json(*args: str | Path) -> dict[str, Any]:
    """``loopml ARGS --json``: one JSON document on stdout."""
    payload: dict[str, Any] = json.loads(loopml(*args, "--json").stdout)
    return payload


def wine_frame() -> pd.DataFrame:
    """The wine set as a user's export: shuffled, with an id, a time, units and a text category."""
    frame = load_wine(as_frame=True).frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    frame = frame.rename(columns=UNITS)
    frame.insert(0, ID, np.arange(5001, 5001 + len(frame)))
    times = pd.date_range("2024-03-01", periods=len(frame), freq="6h")
    frame.insert(1, TIME, times.strftime("%Y-%m-%dT%H:%M:%S"))
    frame[TYPE] = pd.qcut(frame["hue"], 3, labels=["L", "M", "H"]).astype(str)
    frame[TARGET] = (frame.pop("target") == 0).astype(int)
    return frame


@dataclass(frozen=True)
class Files:
    """The user's two files, and what was planted in the messy one."""

    clean: Path
    messy: Path
    clean_rows: int
    good_rows: int  # the good rows of messy.csv
    bad_rows: int
    by_column: Counter[tuple[str, str]]  # (rule, column) -> planted rows
    template: dict[str, Any]  # a good record (the newest row), for the API


def bad_rows(
    later: pd.DataFrame, history: pd.DataFrame
) -> tuple[list[dict[str, Any]], Counter[tuple[str, str]]]:
    """The bad rows: copies of good rows (fresh ids) with exactly one defect each."""
    rows, by_column = [], Counter[tuple[str, str]]()
    fresh = iter(range(9001, 10_000))
    for i, (rule, column, value, count) in enumerate(BAD_ROWS):
        for j in range(count):
            row = later.iloc[(7 * i + j) % len(later)].to_dict()
            row[ID] = next(fresh)
            row[column] = int(history[ID].iloc[j]) if value == "history" else value
            rows.append(row)
            by_column[rule, column] += 1
    return rows, by_column


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("exports")
    frame = wine_frame()
    cut = int(len(frame) * HISTORY_SHARE)
    history, later = frame.iloc[:cut], frame.iloc[cut:]
    history.to_csv(folder / "clean.csv", index=False)
    bad, by_column = bad_rows(later, history)
    messy = pd.concat([later, pd.DataFrame(bad)], ignore_index=True)
    messy = messy.sample(frac=1.0, random_state=11)  # the bad rows mixed in among the good ones
    messy.to_csv(folder / "messy.csv", index=False)
    newest = frame.drop(columns=TARGET).iloc[-1].to_dict()
    template = {k: v.item() if isinstance(v, np.generic) else v for k, v in newest.items()}
    return Files(
        folder / "clean.csv", folder / "messy.csv", len(history), len(later), len(bad), by_column, template
    )


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_misspelled_columns_are_exit_2_with_the_real_name(files: Files, tmp_path: Path) -> None:
    directory = tmp_path / "cellar"
    given = ["--target", TARGET, "--id", ID, "--time", TIME]
    for option, typo, real in (
        ("--target", "barollo", TARGET),
        ("--id", "wine_di", ID),
        ("--time", "tasted", TIME),
    ):
        args = list(given)
        args[args.index(option) + 1] = typo
        result = loopml("init", directory, "--from", files.clean, *args, code=2)
        line = one_error_line(result)
        assert f"{option} '{typo}' is not a column of clean.csv; did you mean '{real}'?" in line, line
        assert not (directory / "loopml.yaml").exists()


def test_a_new_user_from_file_to_explained_prediction(files: Files, tmp_path: Path) -> None:
    directory = tmp_path / "cellar"
    started = loopml("init", directory, "--from", files.clean, "--target", TARGET, "--id", ID, "--time", TIME)
    assert "Task: binary, because 'barolo' has two distinct values, 0 and 1" in started.stdout, started.stdout
    assert f"({files.clean_rows:,} rows, 17 columns)" in started.stdout

    checked = loopml("check", "-p", directory)
    assert f"target: {TARGET}" in checked.stdout and f"id_column: {ID}" in checked.stdout

    first = loopml_json("ingest", "-p", directory)
    assert (first["version"], first["accepted"], first["quarantined"]) == (1, files.clean_rows, 0)
    assert first["contract_created"] is True
    _ingest_counts_every_bad_row(directory, files)

    trained = loopml_json("train", "-p", directory)
    assert trained["promoted"] is True and trained["model_version"] == 1
    assert trained["selection"]["summary"] and isinstance(trained["warnings"], list)

    with (
        Project.open(directory, environ={}).start_server() as server,
        httpx.Client(base_url=server.url) as client,
    ):
        _the_api_enforces_the_contract(client, files.template)
        _explanations_add_up(client, files.template)


def _ingest_counts_every_bad_row(directory: Path, files: Files) -> None:
    """``ingest --input messy.csv``: the quarantine counts per rule are the planted ones."""
    second = loopml_json("ingest", "-p", directory, "--input", files.messy)
    rows_read = files.good_rows + files.bad_rows
    assert second["rows_read"] == rows_read and second["version"] == 2
    assert second["quarantine_by_rule"] == planted()
    assert (second["accepted"], second["quarantined"]) == (files.good_rows, files.bad_rows)
    assert second["accepted"] + second["quarantined"] == rows_read  # nothing lost
    assert second["rows"] == files.clean_rows + files.good_rows  # the history, plus the new good rows

    listed = loopml_json("data", "quarantine", "-p", directory, "--limit", "100")
    assert listed["quarantine_by_rule"] == planted() and listed["rows"] == files.bad_rows
    found = Counter((row["_rule"], row["_column"]) for row in listed["sample"])
    assert found == files.by_column
    assert {row["_value"] for row in listed["sample"] if row["_rule"] == "category"} == {"Q"}

    export = directory / "to-fix.csv"
    shown = loopml("data", "quarantine", "-p", directory, "--rule", "range", "--export", export).stdout
    assert PROLINE in shown and COLOR in shown, shown  # Rich did not take '[mg/L]' for markup
    exported = pd.read_csv(export)
    in_range_rule = Counter({key: n for key, n in files.by_column.items() if key[0] == "range"})
    assert Counter(zip(exported["_rule"], exported["_column"], strict=True)) == in_range_rule


def rejected(response: httpx.Response, field: str, value: str, rule: str) -> None:
    """A 4xx whose one-line message names the field, the value and the rule."""
    assert 400 <= response.status_code < 500, response.text
    message = response.json()["error"]["message"]
    assert message.startswith(f"field '{field}': {value} "), message
    assert f"(contract rule: {rule})" in message, message


def _the_api_enforces_the_contract(client: httpx.Client, template: dict[str, Any]) -> None:
    predict = "/v1/models/cellar/predict"
    good = {**template, ID: 77_001}
    answer = client.post(predict, json=good)
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction[ID] == 77_001 and 0.0 <= prediction["score"] <= 1.0

    rejected(client.post(predict, json={**good, TYPE: "Q"}), TYPE, "'Q'", "category")
    rejected(client.post(predict, json={**good, PROLINE: 1_000_000}), PROLINE, "1000000", "range")
    rejected(client.post(predict, json={**good, "vintage": 1999}), "vintage", "1999", "extra_field")
    rejected(client.post(predict, json={**good, ALCOHOL: "13.2"}), ALCOHOL, "'13.2'", "type")


def _explanations_add_up(client: httpx.Client, template: dict[str, Any]) -> None:
    records = [{**template, ID: 77_100 + i, ALCOHOL: 11.5 + i, PROLINE: 400.0 + 300 * i} for i in range(4)]
    answer = client.post("/v1/models/cellar/predict?explain=true&explain_k=100", json=records)
    assert answer.status_code == 200, answer.text
    columns = set(template) - {ID}
    for record, prediction in zip(records, answer.json()["predictions"], strict=True):
        assert prediction[ID] == record[ID]
        explanation = prediction["explanation"]
        contributions = {c["feature"]: c["contribution"] for c in explanation["contributions"]}
        total = explanation["base_value"] + sum(contributions.values())
        assert abs(total - explanation["raw_score"]) <= 1e-6
        assert abs(1 / (1 + math.exp(-explanation["raw_score"])) - prediction["score"]) <= 1e-6
        assert set(contributions) <= columns, set(contributions) - columns  # the user's names, no id
        assert {ALCOHOL, PROLINE, MAGNESIUM, COLOR} <= set(contributions)  # brackets kept
