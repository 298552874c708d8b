"""``loopml models``: promote, history (and ``--at``), rollback and diff, on a real trained project."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from sklearn.datasets import make_classification
from typer.testing import CliRunner

from loopml.cli import app
from loopml.project import Project

runner = CliRunner()


def invoke(project: Path, *args: str) -> Result:
    return runner.invoke(app, ["models", *args, "--project", str(project)])


def one_json_object(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    payload = json.loads(lines[0])
    assert isinstance(payload, dict)
    return payload


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_project(directory: Path, C: float) -> None:
    """A small binary CSV project whose logistic model uses regularisation ``C``."""
    if not (directory / "data.csv").exists():
        directory.mkdir(parents=True)
        X, y = make_classification(n_samples=400, n_features=5, random_state=0)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
        frame["ts"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(400), unit="h")
        frame["y"] = y
        frame.to_csv(directory / "data.csv", index=False)
    (directory / "loopml.yaml").write_text(
        "name: cli-models\ntask: binary\nsource: {kind: csv, path: data.csv}\ntarget: y\nevent_time: ts\n"
        f"train: {{model: logistic, params: {{C: {C}}}, bootstrap: 20}}\n",
        encoding="utf-8",
    )


@pytest.fixture(scope="module", autouse=True)
def _no_loopml_environment() -> Iterator[None]:
    """Unset LOOPML_* overrides (but not LOOPML_TEST_*), so every store stays inside its project."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("LOOPML_") and not name.startswith("LOOPML_TEST_"):
                mp.delenv(name)
        yield


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two versions (C=1 then C=0.01; version 1 became champion when trained), then: promote 2, history,
    rollback, history again."""
    directory = tmp_path_factory.mktemp("models") / "proj"
    write_project(directory, C=1.0)
    project = Project.open(directory, environ={})
    project.ingest()
    project.train()
    write_project(directory, C=0.01)
    Project.open(directory, environ={}).train()
    steps: dict[str, Any] = {"dir": directory}
    steps["promote"] = one_json_object(invoke(directory, "promote", "2", "-r", "why", "--json"))
    steps["history"] = one_json_object(invoke(directory, "history", "--json"))
    steps["rollback"] = one_json_object(invoke(directory, "rollback", "-r", "v2 misbehaves", "--json"))
    steps["after"] = one_json_object(invoke(directory, "history", "--json"))
    return steps


def test_promote_moves_champion_and_records_actor_and_reason(flow: dict[str, Any]) -> None:
    change = flow["promote"]
    assert change["alias"] == "champion"
    assert (change["previous_version"], change["version"]) == (1, 2)
    assert change["reason"] == "why"
    assert change["actor"].endswith("(cli)")
    recorded = flow["history"]["history"][-1]
    assert recorded == change


def test_history_lists_every_move(flow: dict[str, Any]) -> None:
    moves = flow["after"]["history"]
    assert [(m["alias"], m["previous_version"], m["version"]) for m in moves] == [
        ("champion", None, 1),  # the first trained version
        ("champion", 1, 2),  # promote
        ("champion", 2, 1),  # rollback
    ]
    assert [m["reason"] for m in moves][1:] == ["why", "v2 misbehaves"]
    assert moves[0]["actor"] == "loopml train"
    times = [datetime.fromisoformat(m["at"]) for m in moves]
    assert times == sorted(times)


def test_rollback_goes_back(flow: dict[str, Any]) -> None:
    change = flow["rollback"]
    assert (change["previous_version"], change["version"]) == (2, 1)
    shown = one_json_object(invoke(flow["dir"], "show", "champion", "--json"))
    assert shown["version"] == 1 and "champion" in shown["aliases"]


def test_history_at_says_which_version_held_the_alias(flow: dict[str, Any]) -> None:
    first, promoted, rolled_back = (datetime.fromisoformat(m["at"]) for m in flow["after"]["history"])

    def at(when: datetime) -> int | None:
        payload = one_json_object(invoke(flow["dir"], "history", "--at", when.isoformat(), "--json"))
        assert payload["alias"] == "champion"
        version: int | None = payload["version"]
        return version

    assert at(first - timedelta(seconds=5)) is None  # before any model
    assert at(first + (promoted - first) / 2) == 1
    assert at(promoted + (rolled_back - promoted) / 2) == 2
    assert at(rolled_back + timedelta(seconds=5)) == 1
    # The same instant written in another time zone (and without a zone: UTC) gives the same answer.
    middle = (promoted + (rolled_back - promoted) / 2).astimezone(timezone(timedelta(hours=5)))
    assert at(middle) == 2
    assert at(middle.astimezone(UTC).replace(tzinfo=None)) == 2


def test_rollback_without_an_earlier_version_is_exit_5_with_one_line(flow: dict[str, Any]) -> None:
    directory = flow["dir"]
    assert_one_line_error(
        invoke(directory, "rollback", "--alias", "shadow"), 5, "shadow", "no earlier version"
    )
    one_json_object(invoke(directory, "promote", "2", "--alias", "challenger", "--json"))
    assert_one_line_error(invoke(directory, "rollback", "--alias", "challenger"), 5, "challenger")
    # The failed rollback recorded nothing.
    history = one_json_object(invoke(directory, "history", "--alias", "challenger", "--json"))["history"]
    assert len(history) == 1


def test_diff_shows_changed_fields(flow: dict[str, Any]) -> None:
    payload = one_json_object(invoke(flow["dir"], "diff", "1", "2", "--json"))
    assert (payload["a"], payload["b"]) == (1, 2)
    changed = payload["changed"]
    assert changed["params.C"] == [1.0, 0.01]
    assert "params.model" not in changed and "input_columns" not in changed  # the same in both
    assert "metrics.score" in changed
    assert one_json_object(invoke(flow["dir"], "diff", "1", "1", "--json"))["changed"] == {}


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "12:00 on monday"])
def test_a_bad_at_is_a_one_line_error(flow: dict[str, Any], text: str) -> None:
    assert_one_line_error(invoke(flow["dir"], "history", "--at", text), 4, f"--at '{text}'", "ISO 8601")


def test_promote_of_a_missing_version_is_a_one_line_error(flow: dict[str, Any]) -> None:
    assert_one_line_error(invoke(flow["dir"], "promote", "9"), 5, "version 9", "versions: 1, 2")
