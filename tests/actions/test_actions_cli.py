"""``loopml actions list|replay|dispatch`` on a real project store and a real receiver."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from actions_support import SECRET_ENV, log_predictions, prediction_rows
from typer.testing import CliRunner

from loopml.cli import app
from loopml.examples.fraud.receiver import CaseReceiver
from loopml.project import Project

runner = CliRunner()


def _project(directory: Path, url: str) -> Project:
    config = {
        "name": "fraud",
        "source": {"kind": "csv", "path": "x.csv"},
        "target": "y",
        "actions": {
            "endpoints": {
                "cases": {"kind": "webhook", "url": url, "secret_env": SECRET_ENV},
                "audit": {"kind": "webhook", "url": url, "secret_env": SECRET_ENV},
            },
            "rules": [
                {
                    "name": "open-case",
                    "endpoint": "cases",
                    "when": [{"field": "label", "op": "==", "value": 1}],
                },
                {"name": "audit", "endpoint": "audit", "payload": {"id": "{prediction_id}"}},
            ],
            "allowed_hosts": ["127.0.0.1"],
            "allow_loopback": True,
        },
    }
    directory.mkdir()
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config))
    return Project.open(directory)


def _json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_dispatch_replay(tmp_path: Path, receiver: CaseReceiver) -> None:
    proj = _project(tmp_path / "p", receiver.url)
    log_predictions(
        proj.store.engine, proj.settings, prediction_rows(4, score=lambda i: 0.9 if i < 2 else 0.1)
    )
    listed = _json("actions", "list", "-p", str(proj.settings.project_dir))
    assert {"pending", "delivered", "dead", "suppressed", "by_kind", "by_endpoint", "recent"} <= set(listed)
    assert (listed["pending"], listed["delivered"], listed["dead"]) == (6, 0, 0)
    assert listed["by_kind"] == {"webhook": {"pending": 6, "delivered": 0, "dead": 0, "suppressed": 0}}
    assert listed["by_endpoint"]["cases"]["pending"] == 2 and listed["by_endpoint"]["audit"]["pending"] == 4

    assert (listed["max_delay_s"], listed["retry_horizon_s"]) == (36000.0, 99305.0)  # the default schedule
    shown = runner.invoke(app, ["actions", "list", "-p", str(proj.settings.project_dir)])
    assert "Retries: at most 10h apart, for 27h35m in all" in shown.output

    receiver.fail_next(6, 422)  # a permanent refusal: every action dies at once
    done = _json("actions", "dispatch", "-p", str(proj.settings.project_dir))
    assert done == {"attempts": 6, "pending": 0, "delivered": 0, "dead": 6, "suppressed": 0}
    dead = _json("actions", "list", "-p", str(proj.settings.project_dir), "--status", "dead", "--limit", "1")
    assert len(dead["recent"]) == 1 and "HTTP 422" in dead["recent"][0]["last_error"]

    one = _json(
        "actions", "replay", "-p", str(proj.settings.project_dir), "--id", str(dead["recent"][0]["id"])
    )
    assert one == {"replayed": 1, "enabled": []}
    rest = _json("actions", "replay", "-p", str(proj.settings.project_dir))
    assert rest["replayed"] == 5
    done = _json("actions", "dispatch", "-p", str(proj.settings.project_dir))
    assert (done["delivered"], done["dead"]) == (6, 0)
    assert len(receiver.cases()) == 6


def test_user_mistakes_are_one_line_errors(tmp_path: Path, receiver: CaseReceiver) -> None:
    proj = _project(tmp_path / "p", receiver.url)
    where = str(proj.settings.project_dir)
    result = runner.invoke(app, ["actions", "replay", "-p", where, "--id", "999"])
    assert result.exit_code != 0 and "no dead action with id 999" in result.output
    result = runner.invoke(app, ["actions", "list", "-p", where, "--status", "lost"])
    assert result.exit_code != 0 and "status 'lost'" in result.output
    (tmp_path / "p" / "loopml.yaml").write_text(
        (tmp_path / "p" / "loopml.yaml").read_text().replace("endpoint: cases", "endpoint: casse")
    )
    result = runner.invoke(app, ["actions", "list", "-p", where])
    assert result.exit_code == 2 and "did you mean 'cases'?" in result.output
    assert "Traceback" not in result.output


def test_worker_delivers_the_outbox(tmp_path: Path, receiver: CaseReceiver) -> None:
    proj = _project(tmp_path / "p", receiver.url)
    log_predictions(proj.store.engine, proj.settings, prediction_rows(3, score=0.9))
    result = runner.invoke(app, ["worker", "--once", "-p", str(proj.settings.project_dir)])
    assert result.exit_code == 0, result.output
    assert len(receiver.cases()) == 6  # open-case and audit, for each of the 3 predictions
