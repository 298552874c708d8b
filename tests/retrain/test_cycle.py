from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from loopml.cli import app
from loopml.dashboard import dashboard_data, render_dashboard
from loopml.enums import TriggerKind
from loopml.examples import write_example
from loopml.project import Project
from loopml.registry import alias_history, get_alias
from loopml.retrain import Trigger, list_events, run_cycle, tick
from loopml.retrain.events import start_event


def _configure(root: Path, **train: object) -> Project:
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"].update(bootstrap=0, report=False, **train)
    # No refit: the champion keeps its holdout unseen, so a cycle on the same rows can judge a challenger
    # (a champion refitted on every row would leave none it has not learned from: the cycle would wait).
    config["retrain"] = {"gate": {"min_improvement": 0.01}, "cooldown": "1m", "refit": False}
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    return Project.open(root)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("source")
    write_example("fraud", root, days=50, regime_change_day=None)
    return pd.read_parquet(root / "data" / "transactions.parquet")


@pytest.fixture
def project(tmp_path: Path, source: pd.DataFrame) -> Project:
    write_example("fraud", tmp_path / "p", days=10, regime_change_day=None)
    source.to_parquet(tmp_path / "p" / "data" / "transactions.parquet", index=False)
    proj = _configure(tmp_path / "p", params={"n_estimators": 40})
    proj.ingest()
    proj.train()
    return proj


def test_a_challenger_trained_on_shuffled_labels_is_never_promoted(project: Project) -> None:
    for seed in range(10):
        buggy = _configure(
            project.settings.project_dir,
            model="shuffled_estimator:ShuffledLabelsClassifier",
            params={"n_estimators": 20, "random_state": seed, "verbose": -1},
        )
        result = run_cycle(buggy.settings, buggy.store, force=True)
        assert result.status == "rejected", result.to_dict()
        assert get_alias(buggy.store.engine, buggy.name, "champion") == 1
    cycles = list_events(project.store.engine, project.name, "cycle")
    assert [e.status for e in cycles] == ["rejected"] * 10


def test_a_genuinely_better_challenger_is_promoted_with_its_reason(
    tmp_path: Path, source: pd.DataFrame
) -> None:
    root = tmp_path / "p"
    write_example("fraud", root, days=10, regime_change_day=None)
    source.to_parquet(root / "data" / "transactions.parquet", index=False)
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    windows = config["features"].pop("windows")  # the champion sees only the transaction itself
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    blind = _configure(root, params={"n_estimators": 40})
    blind.ingest()
    blind.train()
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["features"]["windows"] = windows  # the challenger also sees card and terminal history
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    informed = Project.open(root)
    result = run_cycle(informed.settings, informed.store, force=True)
    assert result.status == "promoted", result.to_dict()
    assert get_alias(informed.store.engine, informed.name, "champion") == result.challenger_version == 2
    move = alias_history(informed.store.engine, informed.name, "champion")[-1]
    assert move.actor == "loopml retrain" and "against champion v1" in move.reason
    # The watch window: an alarm on the new champion's live predictions rolls the promotion back.
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["monitor"] = {"window": "1d", "estimated_floor": {"average_precision": 0.999}}
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    watched = Project.open(root)
    assert tick(watched.settings, watched.store)[0] is None  # no prediction yet: no alarm
    source.tail(300).to_parquet(root / "live.parquet", index=False)
    watched.predictions.predict_file(root / "live.parquet", root / "scored.parquet")
    rolled, _ = tick(watched.settings, watched.store)
    assert rolled is not None and (rolled["from"], rolled["to"]) == (2, 1)
    back = alias_history(watched.store.engine, watched.name, "champion")[-1]
    assert back.actor == "loopml retrain" and back.reason.startswith("watch alarm: estimated performance")
    assert get_alias(watched.store.engine, watched.name, "champion") == 1
    # The dashboard shows the loop: the rollback, then the promoting cycle, with their reasons.
    shown = dashboard_data(watched)["cycles"]
    assert [(c["kind"], c["status"]) for c in shown] == [("rollback", "done"), ("cycle", "promoted")]
    assert "against champion v1" in shown[1]["why"] and shown[1]["challenger"] == 2
    page = render_dashboard(watched)
    assert "<h2>Retraining</h2>" in page and "watch alarm: estimated performance" in page


def test_dry_run_explains_and_changes_nothing(project: Project) -> None:
    result = CliRunner().invoke(
        app, ["retrain", "--dry-run", "--json", "-p", str(project.settings.project_dir)]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["status"] == "dry_run" and body["ran"] is False and body["champion_version"] == 1
    assert list_events(project.store.engine, project.name) == []


def test_triggers_cooldown_and_abandoned_cycles(project: Project) -> None:
    config = yaml.safe_load((project.settings.project_dir / "loopml.yaml").read_text())
    config["retrain"].update(new_labels=1, cooldown="7d")
    (project.settings.project_dir / "loopml.yaml").write_text(yaml.safe_dump(config))
    proj = Project.open(project.settings.project_dir)
    quiet = run_cycle(proj.settings, proj.store)
    assert quiet.status == "skipped" and quiet.decision.reasons == []
    stale = start_event(proj.store.engine, proj.name, "cycle")  # a worker died mid-cycle ...
    held = run_cycle(proj.settings, proj.store, force=True)  # ... forcing still runs, and cleans up
    assert held.ran
    statuses = {e.id: e.status for e in list_events(proj.store.engine, proj.name, "cycle")}
    assert statuses[stale] in ("running", "abandoned")
    decisions = list_events(proj.store.engine, proj.name, "decision")
    assert decisions and all(e.status == "done" for e in decisions)


def test_worker_once_runs_a_policy_check(project: Project) -> None:
    result = CliRunner().invoke(app, ["worker", "--once", "-p", str(project.settings.project_dir)])
    assert result.exit_code == 0, result.output
    assert list_events(project.store.engine, project.name, "decision")


def test_a_decision_made_before_another_workers_cycle_is_not_acted_on(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker B decides; worker A runs a whole cycle before B gets the lease: B does not run a
    second cycle on its stale decision (the triggers were answered, the cooldown restarted)."""
    from dataclasses import replace

    import loopml.retrain.cycle as cycle

    real = cycle.decide

    def decide_then_lose_the_race(*args: object, **kwargs: object) -> cycle.Decision:
        found = [Trigger(TriggerKind.NEW_LABELS, "new labelled rows")]
        decision = replace(real(*args, **kwargs), retrain=True, triggers=found)
        monkeypatch.setattr(cycle, "decide", real)  # worker A: decides, takes the lease, runs
        assert run_cycle(project.settings, project.store, force=True).ran
        return decision

    monkeypatch.setattr(cycle, "decide", decide_then_lose_the_race)
    late = run_cycle(project.settings, project.store)
    assert late.status == "skipped" and not late.ran
    assert "started after this decision" in late.reasons[0]
    assert len(list_events(project.store.engine, project.name, "cycle")) == 1
