"""The small things of the command line (issue 18), on a sensor project of the user's own kind: column
names with units in brackets, a rare failure target, an id and an event time.

Each test runs the real app (Typer's CliRunner, or ``python -m loopml`` where a process matters): user
text printed as it is (not read as Rich markup), the monitor's windows and what it could not judge,
``retrain --dry-run`` without a trigger, the quarantine export's round trip, ``--version``, flags in
--help, ``worker``/``up --json``, a busy port, a bad ``--input`` and a misspelt alias or example.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient
import yaml
from click.testing import Result
from tritonclient.utils import InferenceServerException
from typer.main import get_command
from typer.testing import CliRunner

import loopml
from loopml.cli import app

runner = CliRunner()
AIR = "Air temperature [K]"
START = pd.Timestamp("2026-01-05")  # a Monday: 7d windows counted from here are not the epoch's Thursdays
HISTORY = 2000  # hourly rows for training; the next 1,000 are scored


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def as_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def sensor_rows(rows: int, seed: int = 0) -> pd.DataFrame:
    """AI4I-like machine readings, one an hour: units in the column names, ~4% failures."""
    rng = np.random.default_rng(seed)
    torque = rng.normal(40, 10, rows)
    wear = rng.integers(0, 250, rows)
    failure = (torque / 60 + wear / 250 + rng.normal(0, 0.25, rows)) > 1.55
    return pd.DataFrame(
        {
            "UDI": np.arange(1, rows + 1),
            "time": START + pd.to_timedelta(np.arange(rows), unit="h"),
            "Type": rng.choice(["L", "M", "H"], rows, p=[0.5, 0.3, 0.2]),
            AIR: np.round(rng.normal(300, 2, rows), 1),
            "Rotational speed [rpm]": rng.normal(1500, 150, rows).round(),
            "Torque [Nm]": torque.round(1),
            "Tool wear [min]": wear,
            "Machine failure": failure.astype(int),
        }
    )


@pytest.fixture(scope="module")
def sensor(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A trained sensor project and its later rows (not ingested), ready to score."""
    root = tmp_path_factory.mktemp("sensor")
    project = root / "sensor"
    (project / "data").mkdir(parents=True)
    rows = sensor_rows(HISTORY + 1000)
    rows.iloc[:HISTORY].to_csv(project / "data" / "ai4i.csv", index=False)
    rows.iloc[HISTORY:].to_parquet(root / "later.parquet", index=False)
    config = {
        "name": "sensor",
        "task": "binary",
        "source": {"kind": "csv", "path": "data/ai4i.csv"},
        "target": "Machine failure",
        "id_column": "UDI",
        "event_time": "time",
        "train": {"params": {"n_estimators": 20, "n_jobs": 1}, "bootstrap": 0, "report": False},
    }
    (project / "loopml.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    p = str(project)
    assert as_json(invoke("ingest", "-p", p, "--json"))["accepted"] == HISTORY
    assert as_json(invoke("train", "-p", p, "--json"))["promoted"]
    return {"dir": project, "p": p, "root": root, "later": root / "later.parquet"}


@contextmanager
def settings(project: Path, **sections: Any) -> Iterator[None]:
    """loopml.yaml with these top-level sections set, for the ``with`` block."""
    path = project / "loopml.yaml"
    original = path.read_text(encoding="utf-8")
    config = {**yaml.safe_load(original), **sections}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(original, encoding="utf-8")


# --- Rich markup: user text is printed as it is ----------------------------------------------------------


def test_a_bracketed_column_in_an_error_line_is_shown_whole(sensor: dict[str, Any], tmp_path: Path) -> None:
    rows = sensor_rows(5, seed=1).assign(**{AIR: "hot"})  # a number column now text: the contract breaks
    rows.to_csv(tmp_path / "typo.csv", index=False)
    line = one_line_error(invoke("ingest", "-p", sensor["p"], "--input", str(tmp_path / "typo.csv")), 4)
    assert f"column {AIR} changed type" in line


def test_the_quarantine_export_keeps_rule_and_column_and_ingests_again(
    sensor: dict[str, Any], tmp_path: Path
) -> None:
    messy = sensor_rows(HISTORY + 60).iloc[HISTORY:].reset_index(drop=True)
    messy.loc[:19, AIR] = np.nan  # not null in the contract
    messy.loc[20:29, AIR] = -5.0  # under the contract's minimum
    messy.to_csv(tmp_path / "messy.csv", index=False)
    ingested = as_json(invoke("ingest", "-p", sensor["p"], "--input", str(tmp_path / "messy.csv"), "--json"))
    assert (ingested["accepted"], ingested["quarantined"]) == (30, 30)

    text = invoke("data", "quarantine", "-p", sensor["p"])
    assert text.exit_code == 0 and "[K]" in text.stdout  # the table's column cell, not swallowed
    export = tmp_path / "quarantine.csv"
    shown = invoke("data", "quarantine", "-p", sensor["p"], "--export", str(export))
    assert shown.exit_code == 0 and "_rule" in shown.stdout
    exported = pd.read_csv(export)
    assert {"_row", "_rule", "_column", "_value"} <= set(exported.columns) and len(exported) == 30
    assert set(exported["_column"]) == {AIR}
    assert exported["_rule"].nunique() == 2  # the null and the range rule, each named

    as_parquet = tmp_path / "quarantine.parquet"
    assert invoke("data", "quarantine", "-p", sensor["p"], "--export", str(as_parquet)).exit_code == 0
    unfixed = as_json(invoke("ingest", "-p", sensor["p"], "--input", str(as_parquet), "--json"))
    assert (unfixed["accepted"], unfixed["quarantined"], unfixed["added_columns"]) == (0, 30, [])

    fixed = exported.assign(**{AIR: 300.0})  # fix the values; the _rule, _column... columns stay
    fixed.to_csv(tmp_path / "fixed.csv", index=False)
    again = as_json(invoke("ingest", "-p", sensor["p"], "--input", str(tmp_path / "fixed.csv"), "--json"))
    assert (again["accepted"], again["quarantined"], again["added_columns"]) == (30, 0, [])
    snapshot = as_json(invoke("data", "show", "-p", sensor["p"], "--json"))
    assert snapshot["rows"] == HISTORY + 60 and snapshot["quarantined"] == 0


def test_demo_summaries_show_bracketed_text() -> None:
    from loopml.examples._demo import console
    from loopml.examples.maintenance.demo import render

    summary = {
        "project": "/tmp/runs[2026]/demo",
        "test_rmse": 14.2,
        "phm08_score": 300.0,
        "published": [{"model": "CNN [Babu 2016]", "rmse": 18.45, "phm08_score": 1286.7, "checked": True}],
    }
    with console.capture() as captured:
        render(summary)
    assert "/tmp/runs[2026]/demo" in captured.get() and "CNN [Babu 2016]" in captured.get()


# --- the monitor: the real window, and what it could not judge -------------------------------------------


@pytest.fixture(scope="module")
def scored(sensor: dict[str, Any]) -> pd.DataFrame:
    """The later 1,000 hours scored in batch (logged), with their ids."""
    out = sensor["root"] / "scored.parquet"
    result = invoke("predict", "-p", sensor["p"], "--input", str(sensor["later"]), "-o", str(out), "--json")
    assert as_json(result)["rows"] == 1000
    return pd.read_parquet(out)


def test_a_monitor_without_a_verdict_says_which_setting_to_change(
    sensor: dict[str, Any], scored: pd.DataFrame
) -> None:
    report = as_json(invoke("monitor", "-p", sensor["p"], "--no-record", "--json"))
    assert report["window"]["predictions"] == 24 and report["drift"] == []  # one day: 24 hours
    drift, realized = report["no_verdict"]
    assert "24 predictions in the window" in drift and "monitor.min_rows (200)" in drift
    assert "monitor.window (1d)" in drift
    assert "monitor.min_labels (30)" in realized and "loopml feedback" in realized
    text = invoke("monitor", "-p", sensor["p"], "--no-record")
    flat = " ".join(text.stdout.split())
    assert "monitor.min_rows (200)" in flat and "monitor.min_labels (30)" in flat


def test_the_monitor_header_names_the_window_it_judged(
    sensor: dict[str, Any], scored: pd.DataFrame, tmp_path: Path
) -> None:
    # 7-day windows from midnight of the first prediction's day (2026-03-29): the latest is May 3-10.
    # Labels for the week before only: realized performance comes from that earlier window.
    times = pd.read_parquet(sensor["later"])[["UDI", "time"]]
    week = scored.merge(times, on="UDI")
    week = week[(week["time"] >= "2026-04-26") & (week["time"] < "2026-05-03")]
    labels = pd.DataFrame({"prediction_id": week["prediction_id"], "label": 0})
    labels.loc[labels.index[:5], "label"] = 1
    labels.to_csv(tmp_path / "labels.csv", index=False)
    assert as_json(invoke("feedback", "-p", sensor["p"], "--input", str(tmp_path / "labels.csv"), "--json"))[
        "accepted"
    ] == len(week)
    with settings(sensor["dir"], monitor={"window": "7d", "min_rows": 100}):
        report = as_json(invoke("monitor", "-p", sensor["p"], "--no-record", "--json"))
        text = invoke("monitor", "-p", sensor["p"], "--no-record")
    window, performance = report["window"], report["performance"]
    assert window["start"].startswith("2026-05-03") and window["end"].startswith("2026-05-10")
    assert window["start"] == report["history"][-1]["window_start"]  # the same cut as the history
    assert window["predictions"] == report["history"][-1]["predictions"] == 168
    assert performance["window_start"].startswith("2026-04-26")
    assert performance["window_end"].startswith("2026-05-03") and performance["labels"] == 168
    assert report["drift"] and report["no_verdict"] == []
    flat = " ".join(text.stdout.split())
    assert "window 2026-05-03 00:00:00 to 2026-05-10 00:00:00 (monitor.window 7d" in flat
    assert "realized performance in the window 2026-04-26 00:00:00 to 2026-05-03 00:00:00" in flat
    assert AIR in flat or "[K]" in text.stdout  # the drift table names the bracketed feature


# --- retrain --dry-run without a trigger -----------------------------------------------------------------


def test_retrain_dry_run_says_that_no_trigger_is_configured(sensor: dict[str, Any]) -> None:
    body = as_json(invoke("retrain", "--dry-run", "-p", sensor["p"], "--json"))
    assert body["configured_triggers"] == [] and "no trigger is configured" in body["hint"]
    text = invoke("retrain", "--dry-run", "-p", sensor["p"])
    flat = " ".join(text.stdout.split())
    assert text.exit_code == 0 and "no trigger is configured" in flat
    for key in ("drift_features", "performance_floor", "estimated_floor", "new_labels", "schedule"):
        assert key in flat
    with settings(sensor["dir"], retrain={"new_labels": 1000}):
        configured = as_json(invoke("retrain", "--dry-run", "-p", sensor["p"], "--json"))
        quiet = invoke("retrain", "--dry-run", "-p", sensor["p"])
    assert configured["configured_triggers"] == ["new_labels"] and configured["hint"] is None
    assert "no trigger is configured" not in quiet.stdout


# --- misspelt names, bad paths, a busy port --------------------------------------------------------------


def test_a_misspelt_alias_or_example_suggests_the_nearest_name(
    sensor: dict[str, Any], tmp_path: Path
) -> None:
    line = one_line_error(invoke("models", "show", "champoin", "-p", sensor["p"]), 5)
    assert "did you mean 'champion'?" in line
    assert "did you mean 'fraud'?" in one_line_error(invoke("demo", "frad", "-p", str(tmp_path / "d")), 2)
    assert "did you mean 'fraud'?" in one_line_error(
        invoke("init", str(tmp_path / "x"), "--example", "frad"), 2
    )


@pytest.mark.parametrize(
    "command",
    [["ingest", "--input", "missing.csv"], ["predict", "--input", "missing.parquet", "-o", "out.parquet"]],
    ids=["ingest", "predict"],
)
def test_a_bad_input_path_names_the_input_option(sensor: dict[str, Any], command: list[str]) -> None:
    line = one_line_error(invoke(*command, "-p", sensor["p"]), 4)
    assert f"--input '{command[2]}' does not exist" in line and "source.path" not in line


def test_a_busy_port_is_one_line_without_the_banner(sensor: dict[str, Any]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", "-p", sensor["p"], "--port", str(port))
        as_json_result = invoke("serve", "-p", sensor["p"], "--port", str(port), "--json")
    line = one_line_error(result, 8)
    assert line == f"error: port {port} on 127.0.0.1 is in use; pass --port or stop the other server"
    assert "Serving" not in result.stdout + result.stderr
    one_line_error(as_json_result, 8)
    assert [json.loads(x) for x in as_json_result.stdout.splitlines()] == [
        {"error": {"code": "busy", "message": line.removeprefix("error: ")}}
    ]  # no url object before it


# --- --version, flags in --help, worker and up with --json -----------------------------------------------


def test_version_prints_the_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"loopml {loopml.__version__}\n"


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


@pytest.mark.parametrize("path", list(_commands(get_command(app))), ids=lambda p: " ".join(p) or "loopml")
def test_boolean_options_show_as_flags_in_help(path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout  # --help, --json, --dry-run ...: flags, not values
    if "--json" in result.stdout:
        assert re.search(r"--json +Print", result.stdout), result.stdout


@pytest.mark.parametrize("command", [["worker"], ["up"]])
def test_worker_and_up_take_json(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "--json" in result.stdout


def test_worker_json_prints_one_object_per_event(sensor: dict[str, Any]) -> None:
    result = invoke("worker", "--once", "-p", sensor["p"], "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["started", "tick", "stopped"]
    cycle = events[1]["tick"]["cycle"]
    assert events[1]["model"] == "sensor" and cycle["status"] == "skipped" and cycle["ran"] is False


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("LOOPML_TEST_") or not k.startswith("LOOPML")}


def _eventually(check: Callable[[], bool], deadline: float) -> bool:
    """``check()`` once it stops failing to connect (the banner comes before the model is loaded)."""
    while True:
        try:
            return check()
        except InferenceServerException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_up_json_prints_the_api_start_and_the_worker_events(sensor: dict[str, Any]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "loopml", "up", "-p", sensor["p"], "--port", str(port), "--json"]
    command += ["--grpc-port", "0"]  # the API's gRPC endpoint too, on a free port
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    lines: list[dict[str, Any]] = []
    try:
        assert process.stdout is not None
        reader = selectors.DefaultSelector()
        reader.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (
            any("url" in x for x in lines) and any(x.get("event") == "tick" for x in lines)
        ):
            if reader.select(timeout=1) and (line := process.stdout.readline()):
                lines.append(json.loads(line))
        started = next(x for x in lines if "url" in x)
        client = grpcclient.InferenceServerClient(started["grpc"])  # a standard v2 gRPC client
        try:
            assert _eventually(client.is_server_live, deadline) and client.is_model_ready("sensor")
        finally:
            client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        rest, errors = process.communicate(timeout=60)
    lines += [json.loads(line) for line in rest.splitlines()]
    assert started["url"] == f"http://127.0.0.1:{port}" and started["model"] == "sensor", (lines, errors)
    assert [x["event"] for x in lines if "event" in x][:2] == ["started", "tick"], (lines, errors)
