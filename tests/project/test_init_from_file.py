"""A new user's own file, through the real command line: ``loopml init --from``, ``loopml check``,
the blank template, the ingest that refuses a misspelled column before writing anything, the
contract's inferred maximum, and the event time that is not a feature unless asked for.

The data is scikit-learn's bundled breast-cancer set written as a CSV, with an id and a synthetic
time column (every four hours), column names with spaces as real exports have.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import Result
from sklearn.datasets import load_breast_cancer
from typer.testing import CliRunner

from loopml.cli import app
from loopml.project import Project, example_names

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _no_loopml_environment() -> Iterator[None]:
    """Unset LOOPML_* overrides (LOOPML_TEST_* kept), so every store stays inside its project."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("LOOPML_") and not name.startswith("LOOPML_TEST_"):
                mp.delenv(name)
        yield


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def error_line(result: Result) -> str:
    """The one line a user mistake prints (on stderr, after 'error: ')."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("error: ")


def cancer_frame() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.insert(0, "patient_id", np.arange(1000, 1000 + len(frame)))
    frame.insert(1, "seen_at", pd.date_range("2024-01-01", periods=len(frame), freq="4h").astype(str))
    return frame


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "cancer.csv"
    cancer_frame().to_csv(path, index=False)
    return path


def init_from(directory: Path, csv: Path, *extra: str) -> Result:
    return invoke("init", str(directory), "--from", str(csv), "--target", "target", *extra)


@pytest.fixture
def project_dir(tmp_path: Path, csv: Path) -> Path:
    """A project written by ``init --from`` with the id and the time column."""
    result = init_from(tmp_path / "cancer", csv, "--id", "patient_id", "--time", "seen_at")
    assert result.exit_code == 0, result.output
    return tmp_path / "cancer"


def edit(directory: Path, change: dict[str, Any]) -> None:
    """Merge ``change`` into the project's loopml.yaml (one level of sections deep)."""
    path = directory / "loopml.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


# --- init --from ----------------------------------------------------------------------------------


def test_init_from_a_csv_says_the_task_and_writes_a_valid_commented_project(
    tmp_path: Path, csv: Path
) -> None:
    result = init_from(tmp_path / "p", csv, "--id", "patient_id", "--time", "seen_at")
    assert result.exit_code == 0, result.output
    assert "Task: binary, because 'target' has two distinct values, 0 and 1" in result.stdout
    assert "Monitoring: window 30d" in result.stdout  # 569 rows over 95 days: ~6 a day
    text = (tmp_path / "p" / "loopml.yaml").read_text(encoding="utf-8")
    assert "# Inferred from the target: 'target' has two distinct values" in text
    assert "# Monitoring windows, chosen from the data: 569 rows over 94.7 days" in text
    settings = Project.open(tmp_path / "p", environ={}).settings
    assert (settings.task, settings.target, settings.id_column, settings.event_time) == (
        "binary", "target", "patient_id", "seen_at",
    )  # fmt: skip
    assert settings.source.kind == "csv" and settings.source.path == str(csv.resolve())  # outside: absolute
    assert (settings.monitor.window, settings.monitor.min_rows) == ("30d", 36)


def test_init_from_json_and_a_file_inside_the_project_is_relative(tmp_path: Path) -> None:
    (tmp_path / "p" / "data").mkdir(parents=True)
    frame = cancer_frame().rename(columns={"mean radius": "Air temperature [K]"})
    frame.to_parquet(tmp_path / "p" / "data" / "rows.parquet", index=False)
    result = invoke("init", str(tmp_path / "p"), "--from", str(tmp_path / "p" / "data" / "rows.parquet"),
                    "--target", "Air temperature [K]", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["task"], summary["source"]) == (
        "regression",
        {"kind": "parquet", "path": "data/rows.parquet"},
    )
    assert summary["task_reason"].startswith("'Air temperature [K]' has 456 distinct numbers")
    assert summary["monitor"]["window"] == "1d"  # no event time: the default, and says so
    settings = Project.open(tmp_path / "p", environ={}).settings
    assert settings.target == "Air temperature [K]" and settings.source.path == "data/rows.parquet"


def test_init_infers_multiclass_and_takes_an_explicit_task(tmp_path: Path) -> None:
    frame = cancer_frame().assign(grade=lambda f: pd.cut(f["mean radius"], 3, labels=["low", "mid", "high"]))
    frame.to_csv(tmp_path / "graded.csv", index=False)
    result = invoke("init", str(tmp_path / "a"), "--from", str(tmp_path / "graded.csv"), "--target", "grade")
    assert (
        result.exit_code == 0
        and "Task: multiclass, because 'grade' has 3 distinct text values" in result.stdout
    )
    chosen = invoke("init", str(tmp_path / "b"), "--from", str(tmp_path / "graded.csv"), "--target",
                    "mean texture", "--task", "regression")  # fmt: skip
    assert chosen.exit_code == 0 and "Task: regression, because you chose --task regression" in chosen.stdout
    wrong = invoke("init", str(tmp_path / "c"), "--from", str(tmp_path / "graded.csv"), "--target",
                   "mean texture", "--task", "binary")  # fmt: skip
    assert wrong.exit_code == 2 and "must hold 0/1 values" in error_line(wrong)


@pytest.mark.parametrize(
    ("option", "value", "closest"),
    [("--target", "targt", "target"), ("--id", "patient_ud", "patient_id"), ("--time", "seen_a", "seen_at")],
)
def test_a_misspelled_column_is_exit_2_with_the_closest_and_writes_nothing(
    tmp_path: Path, csv: Path, option: str, value: str, closest: str
) -> None:
    args = {"--target": "target", "--id": "patient_id", "--time": "seen_at", option: value}
    result = invoke("init", str(tmp_path / "p"), "--from", str(csv), *[a for kv in args.items() for a in kv])
    assert result.exit_code == 2
    assert error_line(result) == (
        f"loopml init: {option} '{value}' is not a column of cancer.csv; did you mean '{closest}'?"
    )
    assert not (tmp_path / "p").exists()


def test_init_refuses_mixed_options_and_an_existing_project(project_dir: Path, csv: Path) -> None:
    assert error_line(invoke("init", str(project_dir.parent / "x"), "--target", "target")) == (
        "loopml init: --target goes with --from FILE (your own data file)."
    )
    assert "needs --target" in error_line(invoke("init", str(project_dir.parent / "x"), "--from", str(csv)))
    both = invoke("init", str(project_dir.parent / "x"), "--from", str(csv), "--example", "fraud")
    assert both.exit_code == 2 and "choose one of --example NAME and --from FILE" in error_line(both)
    again = init_from(project_dir, csv)
    assert again.exit_code == 4 and "already exists" in error_line(again)


def test_init_help_lists_every_example() -> None:
    result = invoke("init", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert len(example_names()) >= 5
    for name in example_names():
        assert name in text, name


# --- the blank template ---------------------------------------------------------------------------


def test_init_without_an_example_or_a_file_writes_the_blank_template(tmp_path: Path, csv: Path) -> None:
    result = invoke("init", str(tmp_path / "blank"))
    assert result.exit_code == 0 and "fill in source and target" in result.stdout
    text = (tmp_path / "blank" / "loopml.yaml").read_text(encoding="utf-8")
    for section in ("source", "target", "id_column", "event_time", "cleaning", "contract", "features",
                    "train", "serve", "monitor", "retrain", "actions"):  # fmt: skip
        assert f"# {section}:" in text or f"\n{section}:" in text, section
    check = invoke("check", "-p", str(tmp_path / "blank"))
    assert check.exit_code == 2 and "missing required key 'source'" in error_line(check)
    filled = text.replace(
        "# source:\n#   kind: csv\n#   path: data/orders.csv", f"source:\n  kind: csv\n  path: {csv}"
    ).replace("# target: churned", "target: target")
    (tmp_path / "blank" / "loopml.yaml").write_text(filled, encoding="utf-8")
    assert invoke("check", "-p", str(tmp_path / "blank")).exit_code == 0


# --- loopml check ---------------------------------------------------------------------------------


def test_check_passes_and_lists_what_it_checked(project_dir: Path) -> None:
    result = invoke("check", "-p", str(project_dir), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["checked_against"] == "cancer.csv" and len(report["columns"]) == 33
    assert [r["key"] for r in report["references"]] == ["target", "id_column", "event_time"]


WINDOW = {"entity": "mean texture", "column": "mean area", "aggs": ["count"], "windows": ["1d"]}


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"target": "targte"}, "target 'targte' is not a column of cancer.csv; did you mean 'target'?"),
        (
            {"id_column": "patient_ud"},
            "id_column 'patient_ud' is not a column of cancer.csv; did you mean 'patient_id'?",
        ),
        ({"event_time": "seen"}, "event_time 'seen' is not a column of cancer.csv; did you mean 'seen_at'?"),
        (
            {"features": {"drop": ["mean radius", "worst smothness"]}},
            "features.drop[1] 'worst smothness' is not a column of cancer.csv; "
            "did you mean 'worst smoothness'?",
        ),
        (
            {"features": {"windows": [{**WINDOW, "entity": "mean textur"}]}},
            "features.windows[0].entity 'mean textur' is not a column of cancer.csv; "
            "did you mean 'mean texture'?",
        ),
    ],
    ids=["target", "id_column", "event_time", "features.drop", "window entity"],
)
def test_check_names_the_key_the_value_and_the_closest_column(
    project_dir: Path, change: dict[str, Any], line: str
) -> None:
    edit(project_dir, change)
    result = invoke("check", "-p", str(project_dir))
    assert result.exit_code == 2
    assert error_line(result) == f"loopml.yaml: {line}"
    # ingest runs the same check first, and refuses before it writes anything
    ingest = invoke("ingest", "-p", str(project_dir))
    assert ingest.exit_code == 2 and error_line(ingest) == f"loopml.yaml: {line}"
    assert sorted(p.name for p in project_dir.iterdir()) == ["loopml.schema.json", "loopml.yaml"]


def test_train_checks_the_config_against_the_data_set(project_dir: Path) -> None:
    assert invoke("ingest", "-p", str(project_dir)).exit_code == 0
    edit(project_dir, {"event_time": "seen_a"})  # today a KeyError deep in train
    result = invoke("train", "-p", str(project_dir))
    assert result.exit_code == 2
    assert error_line(result) == (
        "loopml.yaml: event_time 'seen_a' is not a column of data set 'cancer' (contract v1); "
        "did you mean 'seen_at'?"
    )


# --- the contract's maximum and the event time as a feature ---------------------------------------


def test_a_value_far_above_the_inferred_maximum_is_quarantined_at_the_next_ingest(
    project_dir: Path, tmp_path: Path
) -> None:
    assert invoke("ingest", "-p", str(project_dir)).exit_code == 0
    contract = yaml.safe_load((project_dir / "contracts" / "cancer.v1.yaml").read_text(encoding="utf-8"))
    specs = {c["name"]: c for c in contract["columns"]}
    assert specs["mean radius"]["max"] == 56.3  # 6.981 .. 28.11: 28.11 + 28.11, 3 significant digits up
    assert "max" not in specs["patient_id"] and "max" not in specs["seen_at"]  # the id and the time
    more = cancer_frame().iloc[:3].assign(patient_id=[5000, 5001, 5002], seen_at="2024-05-01 00:00:00")
    more.loc[1, "mean radius"] = 5000.0
    more.to_csv(tmp_path / "more.csv", index=False)
    result = invoke("ingest", "-p", str(project_dir), "--input", str(tmp_path / "more.csv"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["quarantine_by_rule"] == {"range": 1}
    rows = Project.open(project_dir, environ={}).data.quarantine().rows
    assert rows[["_rule", "_column", "patient_id"]].values.tolist() == [
        ["range", "mean radius", "5001"]
    ]  # as read


def test_the_event_time_is_a_feature_only_when_the_project_asks(project_dir: Path) -> None:
    project = Project.open(project_dir, environ={})
    project.ingest()
    inputs = project.train().version.signature["input_columns"]
    assert "seen_at" not in inputs and "patient_id" not in inputs and "mean radius" in inputs
    edit(project_dir, {"features": {"datetime_parts": ["hour", "dayofweek"]}})  # asked for explicitly
    asked = Project.open(project_dir, environ={}).train().version.signature["input_columns"]
    assert "seen_at" in asked and "patient_id" not in asked


def test_a_semicolon_csv_and_missing_targets_are_written_into_the_project(tmp_path: Path) -> None:
    frame = cancer_frame()
    frame.loc[[3, 7], "target"] = np.nan
    frame.to_csv(tmp_path / "export.csv", index=False, sep=";")
    result = init_from(tmp_path / "p", tmp_path / "export.csv", "--id", "patient_id")
    assert result.exit_code == 0, result.output
    assert "2 rows have no target: ingest quarantines them." in result.stdout
    settings = Project.open(tmp_path / "p", environ={}).settings
    assert settings.source.options == {"sep": ";"}
    assert settings.cleaning.missing == {"target": "quarantine"}
    ingest = invoke("ingest", "-p", str(tmp_path / "p"), "--json")
    assert json.loads(ingest.stdout)["quarantine_by_rule"] == {"not_null": 2}


def test_a_time_column_without_times_is_refused(tmp_path: Path, csv: Path) -> None:
    result = init_from(tmp_path / "p", csv, "--time", "mean area")
    assert result.exit_code == 2
    assert error_line(result).startswith("loopml init: --time 'mean area' does not hold dates or times")
