"""The ``loopml`` command line, through Typer's CliRunner (and one real ``python -m loopml``).

The module runs the documented flow once (init -> ingest -> train -> models list/show -> predict) with
``--json`` and checks each command's single JSON object; the error tests check one-line messages with
their exit codes, and that ``--debug`` lets the exception (and its traceback) through.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from loopml.cli import app
from loopml.errors import NotFoundError, ProjectNotFoundError
from loopml.examples.fraud import simulate

runner = CliRunner()

INGEST_KEYS = {
    "dataset",
    "version",
    "rows",
    "rows_read",
    "rows_quarantined",
    "quarantine_counts",
    "content_hash",
    "contract_version",
    "contract_created",
    "added_columns",
    # the data pipeline (issue 3): counts of this ingest, the snapshot id, the watermark
    "snapshot",
    "new_version",
    "accepted",
    "quarantined",
    "quarantine_by_rule",
    "watermark",
    "report",  # the data quality report of the new snapshot
}
TRAIN_KEYS = {
    "model",
    "version",
    "promoted",
    "sha256",
    "dataset_version",
    "metrics",
    # model development (issue 4): the primary metric, its score, the dummy's, the threshold, the report
    "model_version",
    "metric",
    "score",
    "baseline_score",
    "threshold",
    "report",
    "companions",  # models trained beside it (the maintenance failure model); [] here
    # issue 18: the choice made on the validation slice (None here: the example fixes its parameters)
    # and the sanity warnings ({kind, column, detail, setting} each)
    "selection",
    "warnings",
    # issue 24: the judged fit (its rows and cutoff), the refit on every row, the derived features
    "evaluated",
    "refit",
    "cutoff",
    "rows_learned",
    "derived_features",
}
SUMMARY_KEYS = {
    "name",
    "version",
    "aliases",
    "created_at",
    "sha256",
    "roc_auc",
    "average_precision",
    "metric",
    "score",
    "baseline_score",
    "dataset_version",
}
SHOW_KEYS = SUMMARY_KEYS | {"metrics", "input_columns", "artifact", "alias_history", "params", "code_version"}


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def one_json_object(result: Result) -> dict[str, Any]:
    """Assert that stdout is exactly one line holding one JSON object; return it."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    payload = json.loads(lines[0])
    assert isinstance(payload, dict)
    return payload


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> str:
    """A user error: the exit code, one ``error: ...`` line on stderr, no traceback anywhere."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the documented flow once; the results of each step, by name, plus the project directory."""
    root = tmp_path_factory.mktemp("cli")
    project = root / "my-fraud"
    steps: dict[str, Any] = {"dir": project}
    steps["init"] = invoke("init", str(project), "--example", "fraud", "--json")
    if steps["init"].exit_code != 0:
        return steps
    # Keep the test quick: 30 simulated days instead of 182, 20 trees instead of 200, one thread.
    simulate(days=30).to_parquet(project / "data" / "transactions.parquet", index=False)
    config = project / "loopml.yaml"
    text = config.read_text(encoding="utf-8")
    assert "n_estimators: 200" in text
    config.write_text(text.replace("n_estimators: 200", "n_estimators: 20\n    n_jobs: 1"), encoding="utf-8")

    p = str(project)
    steps["ingest"] = invoke("ingest", "--project", p, "--json")
    steps["train"] = invoke("train", "--project", p, "--json")
    steps["list"] = invoke("models", "list", "--project", p, "--json")
    steps["show"] = invoke("models", "show", "champion", "--project", p, "--json")
    rows = pd.read_parquet(project / "data" / "transactions.parquet").tail(25)
    steps["input"] = root / "to_score.parquet"
    rows.to_parquet(steps["input"], index=False)
    steps["output"] = root / "out" / "scored.parquet"
    steps["predict"] = invoke(
        "predict", "--input", str(steps["input"]), "--output", str(steps["output"]), "--project", p, "--json"
    )
    return steps


def test_init(flow: dict[str, Any]) -> None:
    result = flow["init"]
    assert result.exit_code == 0, result.output
    payload = one_json_object(result)
    assert payload == {"project_file": str(flow["dir"] / "loopml.yaml"), "example": "fraud"}
    assert (flow["dir"] / "loopml.yaml").is_file()
    assert (flow["dir"] / "data" / "transactions.parquet").is_file()


def test_ingest(flow: dict[str, Any]) -> None:
    result = flow["ingest"]
    assert result.exit_code == 0, result.output
    payload = one_json_object(result)
    assert set(payload) == INGEST_KEYS
    assert payload["dataset"] == "fraud" and payload["version"] == 1
    assert payload["rows"] + payload["rows_quarantined"] == payload["rows_read"] > 1000
    assert payload["contract_created"] is True and payload["contract_version"] == 1
    assert (flow["dir"] / "contracts" / "fraud.v1.yaml").is_file()


def test_train(flow: dict[str, Any]) -> None:
    result = flow["train"]
    assert result.exit_code == 0, result.output
    payload = one_json_object(result)
    assert set(payload) == TRAIN_KEYS
    assert payload["model"] == "fraud" and payload["version"] == 1 and payload["promoted"] is True
    assert payload["dataset_version"] == 1 and len(payload["sha256"]) == 64
    assert 0.0 <= payload["metrics"]["holdout"]["roc_auc"] <= 1.0
    assert set(payload["metrics"]["baseline"]) == set(payload["metrics"]["holdout"])


def test_models_list(flow: dict[str, Any]) -> None:
    result = flow["list"]
    assert result.exit_code == 0, result.output
    payload = one_json_object(result)
    assert set(payload) == {"model", "versions"} and payload["model"] == "fraud"
    [version] = payload["versions"]
    assert set(version) == SUMMARY_KEYS
    assert version["version"] == 1 and version["aliases"] == ["champion"]
    assert version["sha256"] == one_json_object(flow["train"])["sha256"]


def test_models_show(flow: dict[str, Any]) -> None:
    result = flow["show"]
    assert result.exit_code == 0, result.output
    payload = one_json_object(result)
    assert set(payload) == SHOW_KEYS
    assert payload["version"] == 1 and payload["aliases"] == ["champion"]
    assert {"tx_amount", "tx_datetime"} <= set(payload["input_columns"])
    assert not {"tx_fraud", "tx_fraud_scenario", "transaction_id"} & set(payload["input_columns"])
    [change] = payload["alias_history"]
    assert change["alias"] == "champion" and change["version"] == 1 and change["previous_version"] is None
    # By number, the same version.
    again = one_json_object(invoke("models", "show", "1", "--project", str(flow["dir"]), "--json"))
    assert again["sha256"] == payload["sha256"]


def test_predict(flow: dict[str, Any]) -> None:
    result = flow["predict"]
    assert result.exit_code == 0, result.output
    payload = one_json_object(result)
    assert payload == {
        "rows": 25,
        "output": str(flow["output"]),
        "model_version": 1,
        "partitions": 1,
        "quarantined": 0,
        "quarantine": None,
        "quarantine_counts": {},
        "scored_as_missing": {},
    }
    scored = pd.read_parquet(flow["output"])
    assert len(scored) == 25
    assert scored["transaction_id"].tolist() == pd.read_parquet(flow["input"])["transaction_id"].tolist()
    assert scored["score"].between(0, 1).all()


def test_text_output(flow: dict[str, Any]) -> None:
    result = invoke("models", "list", "--project", str(flow["dir"]))
    assert result.exit_code == 0, result.output
    assert "fraud" in result.stdout and "champion" in result.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


# --- user errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["ingest"], ["train"], ["models", "list"], ["models", "show", "1"]])
def test_missing_project_is_exit_2(tmp_path: Path, command: list[str]) -> None:
    result = invoke(*command, "--project", str(tmp_path / "nowhere"))
    assert_one_line_error(result, 2, "no loopml.yaml", "loopml init")
    assert result.stdout == ""


def test_missing_project_with_json_prints_the_error_as_json(tmp_path: Path) -> None:
    result = invoke("ingest", "--project", str(tmp_path / "nowhere"), "--json")
    assert_one_line_error(result, 2, "no loopml.yaml")
    assert one_json_object(result)["error"]["code"] == "project_not_found"


def test_wrong_config_key_is_exit_2(flow: dict[str, Any], tmp_path: Path) -> None:
    text = (flow["dir"] / "loopml.yaml").read_text(encoding="utf-8")
    assert "holdout_fraction:" in text
    broken = text.replace("holdout_fraction:", "holdout_fractoin:")
    (tmp_path / "loopml.yaml").write_text(broken, encoding="utf-8")
    line = assert_one_line_error(invoke("train", "--project", str(tmp_path)), 2, "train.holdout_fractoin")
    assert "did you mean 'holdout_fraction'" in line


def test_unknown_model_version_is_exit_5(flow: dict[str, Any]) -> None:
    p = str(flow["dir"])
    assert_one_line_error(invoke("models", "show", "99", "--project", p), 5, "version 99", "versions: 1")
    assert_one_line_error(invoke("models", "show", "challenger", "--project", p), 5, "'challenger'")
    result = invoke("models", "show", "99", "--project", p, "--json")
    assert_one_line_error(result, 5)
    assert one_json_object(result)["error"]["code"] == "not_found"


def test_predict_with_bad_output_suffix_is_exit_4(flow: dict[str, Any], tmp_path: Path) -> None:
    result = invoke(
        "predict",
        "--input",
        str(flow["input"]),
        "--output",
        str(tmp_path / "x.xlsx"),
        "--project",
        str(flow["dir"]),
    )
    assert_one_line_error(result, 4, ".parquet or .csv")


def test_init_refuses_an_existing_project(flow: dict[str, Any]) -> None:
    assert_one_line_error(invoke("init", str(flow["dir"])), 4, "already exists")


def test_init_unknown_example_is_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(invoke("init", str(tmp_path / "p"), "--example", "frad"), 2, "did you mean 'fraud'")


def test_debug_lets_the_exception_and_its_traceback_through(flow: dict[str, Any], tmp_path: Path) -> None:
    result = invoke("--debug", "ingest", "--project", str(tmp_path / "nowhere"))
    assert result.exit_code != 0
    assert isinstance(result.exception, ProjectNotFoundError)
    assert result.exc_info is not None
    text = "".join(traceback.format_exception(*result.exc_info))
    assert text.startswith("Traceback") and "load_settings" in text

    shown = invoke("--debug", "models", "show", "99", "--project", str(flow["dir"]))
    assert isinstance(shown.exception, NotFoundError)


def clean_env() -> dict[str, str]:
    """The environment without LOOPML_* overrides (LOOPML_TEST_* kept)."""
    return {k: v for k, v in os.environ.items() if k.startswith("LOOPML_TEST_") or not k.startswith("LOOPML")}


def test_debug_traceback_in_a_real_process(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "loopml", "--debug", "ingest", "--project", str(tmp_path / "nowhere")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=clean_env())
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "ProjectNotFoundError" in done.stderr
    without_debug = [c for c in command if c != "--debug"]
    quiet = subprocess.run(without_debug, capture_output=True, text=True, timeout=120, env=clean_env())
    assert quiet.returncode == 2
    assert "Traceback" not in quiet.stderr and len(quiet.stderr.strip().splitlines()) == 1


# --- help ---------------------------------------------------------------------------------------------------


def test_python_m_loopml_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loopml", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    for command in ("init", "ingest", "train", "predict", "serve", "models", "demo"):
        assert command in done.stdout


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["init"],
        ["ingest"],
        ["train"],
        ["predict"],
        ["serve"],
        ["demo"],
        ["models"],
        ["models", "list"],
        ["models", "show"],
    ],
    ids=lambda c: " ".join(c) or "loopml",
)
def test_help_exits_0(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout
    if command and command != ["models"]:
        assert "--json" in result.stdout
    if command not in ([], ["init"], ["models"]):
        assert "--project" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["forecast", "--quick"], "--quick does not apply to the forecast demo"),
        (["recommend", "--seed", "3"], "--seed does not apply to the recommend demo"),
        (["maintenance", "--seed", "3"], "not simulated. Drop --seed."),
    ],
)
def test_a_demo_option_that_does_not_apply_is_a_clear_error(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = invoke("demo", *args, "--project", str(tmp_path / "demo"))
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "demo").exists()  # nothing was built
