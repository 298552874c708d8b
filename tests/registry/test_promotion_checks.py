"""Moving an alias checks what it moves it to. An artifact that was tampered with, truncated, is not a
zip file, or holds something that is not a model is refused by every path that moves an alias
(``loopml models promote`` and ``rollback``, the admin API, the retraining cycle and its watch), with
one clear error that names the model and the version and never a server path; the alias stays.

A running server whose alias points at a version it refuses says so: readiness names the problem,
``loopml_model_refused`` is 1 for that version, and an ERROR line is logged, at start-up too.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import Result
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sklearn.datasets import make_classification
from typer.testing import CliRunner

from loopml.cli import app
from loopml.enums import CycleStatus, EventKind
from loopml.errors import ArtifactIntegrityError, PromotionRefusedError
from loopml.project import Project
from loopml.registry import alias_history, dumps, get_alias, get_version, move_alias, read_artifact
from loopml.retrain import list_events, run_cycle
from loopml.retrain.events import start_event, transition
from loopml.retrain.watch import _roll_back
from loopml.serve import create_app
from loopml.store import sha256_bytes, tables

NAME = "checked"
KINDS = ("tampered", "truncated", "not a zip", "wrong type")
ADMIN = secrets.token_urlsafe(32)
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _no_loopml_environment() -> Iterator[None]:
    """Unset LOOPML_* overrides (but not LOOPML_TEST_*), so every store stays inside its project."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("LOOPML_") and not name.startswith("LOOPML_TEST_"):
                mp.delenv(name)
        yield


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small binary project with two versions: 1 is the champion, 2 is registered beside it."""
    directory = tmp_path_factory.mktemp("promotion") / "proj"
    directory.mkdir()
    X, y = make_classification(n_samples=400, n_features=5, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    frame["ts"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(400), unit="h")
    frame["y"] = y
    frame.to_csv(directory / "data.csv", index=False)
    (directory / "loopml.yaml").write_text(
        f"name: {NAME}\ntask: binary\nsource: {{kind: csv, path: data.csv}}\ntarget: y\nevent_time: ts\n"
        "train: {model: logistic, bootstrap: 0, report: false}\n"
        # No refit: both versions learned the same oldest rows, so the newest are unseen by both and
        # the gate compares them (an equal score passes).
        "retrain: {refit: false, gate: {min_improvement: 0.0}}\n",
        encoding="utf-8",
    )
    project = Project.open(directory, environ={})
    project.ingest()
    assert project.train().promoted
    assert not project.train().promoted
    project.store.engine.dispose()
    return directory


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Iterator[Project]:
    shutil.copytree(template, tmp_path / "proj")
    opened = Project.open(tmp_path / "proj", environ={})
    yield opened
    opened.store.engine.dispose()


def damage(project: Project, version: int, kind: str) -> None:
    """Make ``version``'s artifact unreadable. ``tampered``: bytes flipped after it was written (its
    SHA-256 no longer matches). The others were registered that way (the recorded SHA-256 matches the
    bad bytes, so only loading can tell): cut in half, not a zip file, a skops file of a plain dict."""
    found = get_version(project.store.engine, NAME, version)
    path = Path(project.settings.artifacts_url) / found.artifact_key
    data = path.read_bytes()
    if kind == "tampered":
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0xFF
        path.write_bytes(bytes(flipped))
        return
    bad = {"truncated": data[: len(data) // 2], "not a zip": b"this is not a model\n"}.get(kind)
    bad = dumps({"not": "a model"}) if bad is None else bad
    path.write_bytes(bad)
    mv = tables.model_versions
    with project.store.engine.begin() as conn:
        conn.execute(
            sa.update(mv).where(mv.c.name == NAME, mv.c.version == version).values(sha256=sha256_bytes(bad))
        )


def assert_names_version_not_paths(message: str, project: Project, version: int) -> None:
    assert f"model '{NAME}' version {version}" in message, message
    assert "\n" not in message
    assert str(project.settings.project_dir) not in message and "/tmp/" not in message, message


def cli(project: Project, *args: str) -> Result:
    return runner.invoke(app, ["models", *args, "--project", str(project.settings.project_dir)])


@pytest.mark.parametrize("kind", KINDS)
def test_read_artifact_gives_one_integrity_line(project: Project, kind: str) -> None:
    damage(project, 2, kind)
    with pytest.raises(ArtifactIntegrityError) as info:
        read_artifact(project.store, get_version(project.store.engine, NAME, 2))
    assert_names_version_not_paths(str(info.value), project, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_models_promote_refuses_and_the_alias_stays(project: Project, kind: str) -> None:
    damage(project, 2, kind)
    moves = len(alias_history(project.store.engine, NAME))
    result = cli(project, "promote", "2")
    assert result.exit_code == PromotionRefusedError.exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    assert_names_version_not_paths(lines[0], project, 2)
    assert "not moving alias 'champion' to it (it stays version 1)" in lines[0]
    assert get_alias(project.store.engine, NAME, "champion") == 1
    assert len(alias_history(project.store.engine, NAME)) == moves


@pytest.mark.parametrize("kind", KINDS)
def test_admin_api_answers_409_and_the_alias_stays(project: Project, kind: str) -> None:
    damage(project, 2, kind)
    settings = project.settings.model_copy(
        update={"serve": project.settings.serve.model_copy(update={"admin_token": SecretStr(ADMIN)})}
    )
    with TestClient(create_app(settings, project.store)) as client:
        response = client.post(
            f"/v1/models/{NAME}/aliases/champion",
            json={"version": 2, "reason": "test"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "promotion_refused"
        assert_names_version_not_paths(error["message"], project, 2)
        assert client.get("/health/ready").json()["model_version"] == 1
    assert get_alias(project.store.engine, NAME, "champion") == 1


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_to_a_damaged_version_is_refused(project: Project, kind: str) -> None:
    project.models.promote(2, reason="test: a good promotion first")
    damage(project, 1, kind)
    result = cli(project, "rollback")
    assert result.exit_code == PromotionRefusedError.exit_code, result.output
    assert_names_version_not_paths(result.stderr.strip(), project, 1)
    assert get_alias(project.store.engine, NAME, "champion") == 2
    # The watch's automatic rollback refuses it too: recorded as failed, with the reason.
    assert _roll_back(project.settings, project.store, 2, 1, "test alarm") is None
    assert get_alias(project.store.engine, NAME, "champion") == 2
    (event,) = list_events(project.store.engine, NAME, EventKind.ROLLBACK)
    assert event.status == CycleStatus.FAILED and f"model '{NAME}' version 1" in event.reasons[1]


@pytest.mark.parametrize("kind", KINDS)
def test_the_retraining_cycle_rejects_a_damaged_challenger(project: Project, kind: str) -> None:
    """A cycle whose worker stopped once its challenger (version 2) was trained is resumed by the
    next run; its gate passes, but the artifact fails its check: rejected, the champion stays."""
    engine = project.store.engine
    event = start_event(engine, NAME, EventKind.CYCLE, reasons=["test"])
    with engine.begin() as conn:
        transition(conn, event, CycleStatus.TRAINED, challenger_version=2)
        move_alias(conn, NAME, "challenger", 2, reason="test", actor="test")
    damage(project, 2, kind)
    result = run_cycle(project.settings, project.store)
    assert result.status == CycleStatus.REJECTED, result.to_dict()
    assert any(c["check"] == "beats_champion" and c["passed"] for c in result.gate)  # the gate passed
    assert any(c["check"] == "artifact" and not c["passed"] for c in result.gate)
    assert_names_version_not_paths(result.reasons[0], project, 2)
    assert get_alias(engine, NAME, "champion") == 1
    assert get_alias(engine, NAME, "challenger") == 1  # back on the champion: nothing to shadow


def test_a_running_server_reports_the_version_it_refuses(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    damage(project, 2, "tampered")
    with TestClient(create_app(project.settings, project.store)) as client:
        assert client.get("/health/ready").json()["status"] == "ready"
        with project.store.engine.begin() as conn:  # moved behind loopml's back (set_alias refuses)
            move_alias(conn, NAME, "champion", 2, reason="test", actor="test")
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="loopml.serve.state"):
            for _ in range(3):  # re-checked after the refresh interval, logged once
                client.app.state.loopml.holder.invalidate()  # type: ignore[attr-defined]
                ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text  # it still serves version 1
        body = ready.json()
        assert body["status"] == "degraded" and body["model_version"] == 1
        assert body["problem"]["refused_version"] == 2
        assert_names_version_not_paths(body["problem"]["message"], project, 2)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "points at version 2, which this server refuses" in errors[0].getMessage()
        metrics = client.get("/metrics").text
        assert f'loopml_model_refused{{model="{NAME}",version="2"}} 1.0' in metrics
        with project.store.engine.begin() as conn:
            move_alias(conn, NAME, "champion", 1, reason="test: back", actor="test")
        client.app.state.loopml.holder.invalidate()  # type: ignore[attr-defined]
        assert client.get("/health/ready").json()["status"] == "ready"
        assert "loopml_model_refused{" not in client.get("/metrics").text


def test_a_server_starting_on_a_damaged_champion_says_so(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    damage(project, 1, "not a zip")
    logged = caplog.at_level(logging.ERROR, logger="loopml.serve.state")
    with logged, TestClient(create_app(project.settings, project.store)) as client:
        started = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(started) == 1 and "points at version 1" in started[0] and "serves nothing" in started[0]
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        problem = ready.json()["problem"]
        assert problem["code"] == "artifact_integrity"
        assert_names_version_not_paths(problem["message"], project, 1)
        assert 'loopml_model_refused{model="checked",version="1"} 1.0' in client.get("/metrics").text
