"""Retention: a prune deletes exactly the predictions older than the policy, with their feedback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loopml.config import RetentionConfig, parse_settings
from loopml.errors import ConfigError
from loopml.store import Store, open_store, prune_outbox, prune_predictions, tables, utcnow, write_predictions

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=utcnow().tzinfo)


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(store_url, str(tmp_path / "artifacts"))
    try:
        yield opened
    finally:
        opened.engine.dispose()


def _row(age: timedelta, model: str = "fraud") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "model_name": model,
        "model_version": 1,
        "created_at": NOW - age,
        "origin": "api",
        "inputs": {"x": 1.0},
        "score": 0.5,
        "output": {"score": 0.5},
    }


def _label(rows: list[dict[str, Any]], store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(tables.feedback),
            [{"prediction_id": r["id"], "label": 1, "received_at": NOW} for r in rows],
        )


def _left(store: Store) -> tuple[set[str], set[str]]:
    with store.engine.connect() as conn:
        ids = set(conn.execute(sa.select(tables.predictions.c.id)).scalars())
        labelled = set(conn.execute(sa.select(tables.feedback.c.prediction_id)).scalars())
    return ids, labelled


def test_prune_deletes_only_what_is_older_than_the_policy(store: Store) -> None:
    old = [_row(timedelta(days=d)) for d in (31, 45, 400)] + [_row(timedelta(days=60), "churn")]
    edge = _row(timedelta(days=30))  # exactly at the cutoff: kept
    young = [_row(timedelta(days=d)) for d in (0, 1, 29)] + [_row(timedelta(days=2), "churn")]
    write_predictions(store.engine, [*old, edge, *young])
    _label([old[0], young[0]], store)

    result = prune_predictions(store.engine, RetentionConfig(predictions="30d"), now=NOW, batch=2)

    assert (result.predictions, result.feedback) == (4, 1)
    assert result.cutoff == NOW - timedelta(days=30)
    ids, labelled = _left(store)
    assert ids == {r["id"] for r in [edge, *young]}
    assert labelled == {young[0]["id"]}  # the old prediction's label went with it
    again = prune_predictions(store.engine, RetentionConfig(predictions="30d"), now=NOW)
    assert again.predictions == again.feedback == 0


def test_labelled_predictions_can_be_kept_longer(store: Store) -> None:
    labelled_old, labelled_ancient, plain_old = (_row(timedelta(days=d)) for d in (100, 400, 100))
    write_predictions(store.engine, [labelled_old, labelled_ancient, plain_old])
    _label([labelled_old, labelled_ancient], store)

    policy = RetentionConfig(predictions="90d", labelled="365d")
    result = prune_predictions(store.engine, policy, now=NOW)

    assert (result.predictions, result.feedback) == (2, 1)
    assert _left(store) == ({labelled_old["id"]}, {labelled_old["id"]})


def test_no_policy_keeps_everything(store: Store) -> None:
    write_predictions(store.engine, [_row(timedelta(days=3650))])
    result = prune_predictions(store.engine, RetentionConfig(), now=NOW)
    assert result.predictions == 0 and result.cutoff is None
    assert len(_left(store)[0]) == 1


def test_a_bad_retention_key_or_duration_is_a_one_line_config_error() -> None:
    base = "name: x\nsource: {path: a.csv}\ntarget: y\nstore:\n  retention:\n"
    assert parse_settings(base + "    predictions: 90d\n").store.retention.predictions == "90d"
    with pytest.raises(ConfigError, match="durations look like"):
        parse_settings(base + "    predictions: 90 days\n")
    with pytest.raises(ConfigError, match="did you mean 'predictions'"):
        parse_settings(base + "    prediction: 90d\n")


def test_the_prune_command(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from loopml.cli import app

    (tmp_path / "loopml.yaml").write_text(
        "name: fraud\nsource: {path: data.csv}\ntarget: y\n", encoding="utf-8"
    )
    settings = parse_settings((tmp_path / "loopml.yaml").read_text(), project_dir=tmp_path, environ={})
    opened = open_store(settings.db_url, settings.artifacts_url)
    now = utcnow()
    rows = [{**_row(timedelta(days=d)), "created_at": now - timedelta(days=d)} for d in (1, 40, 400)]
    write_predictions(opened.engine, rows)
    runner, env = CliRunner(), {"LOOPML_DB_URL": "", "LOOPML_ARTIFACTS_URL": ""}

    refused = runner.invoke(app, ["predictions", "prune", "-p", str(tmp_path)], env=env)
    assert refused.exit_code != 0 and "no retention policy" in refused.output
    done = runner.invoke(
        app, ["predictions", "prune", "-p", str(tmp_path), "--older-than", "30d", "--json"], env=env
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout.splitlines()[-1])["deleted_predictions"] == 2
    assert _left(Store(opened.engine, opened.artifacts))[0] == {rows[0]["id"]}
    opened.engine.dispose()


def _action(status: str, age: timedelta, rule: str = "open-case") -> dict[str, Any]:
    return {
        "key": f"msg_{uuid.uuid4().hex}",
        "event": "prediction",
        "source_id": str(uuid.uuid4()),
        "rule": rule,
        "endpoint": "cases",
        "kind": "webhook",
        "payload": {},
        "status": status,
        "attempts": 1,
        "next_attempt_at": NOW - age,
        "created_at": NOW - age,
    }


def _outbox(store: Store) -> list[tuple[str, datetime]]:
    o = tables.action_outbox
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(o.c.status, o.c.created_at)).all()
    return sorted((str(status), created) for status, created in rows)


def test_outbox_prune_keeps_pending_actions_and_the_rules_windows(store: Store) -> None:
    old = [_action(s, timedelta(days=40)) for s in ("delivered", "dead", "suppressed")]
    pending = _action("pending", timedelta(days=400))  # never delivered yet: never deleted
    young = _action("delivered", timedelta(days=10))
    in_window = _action("delivered", timedelta(days=45))  # still inside a 60-day dedupe window
    with store.engine.begin() as conn:
        conn.execute(sa.insert(tables.action_outbox), [*old, pending, young])
    assert prune_outbox(store.engine, "30d", now=NOW, batch=2) == 3
    assert [s for s, _ in _outbox(store)] == ["delivered", "pending"]

    with store.engine.begin() as conn:
        conn.execute(sa.insert(tables.action_outbox), [in_window])
    assert prune_outbox(store.engine, "30d", keep=timedelta(days=60), now=NOW) == 0
    assert prune_outbox(store.engine, "30d", now=NOW) == 1


def test_worker_upkeep_prunes_the_outbox_beyond_the_rule_windows(tmp_path: Path, store_url: str) -> None:
    from loopml.store import tend_prediction_log

    text = (
        "name: fraud\nsource: {path: data.csv}\ntarget: y\n"
        f"store: {{db_url: '{store_url}', retention: {{outbox: 1d}}}}\n"
        "actions:\n  endpoints: {alerts: {kind: log, path: alerts.jsonl}}\n"
        "  rules:\n    - {name: r, endpoint: alerts, when: [{field: score, op: '>=', value: 0.5}],"
        " dedupe: {key: '{score}', window: 7d}}\n"
    )
    settings = parse_settings(text, project_dir=tmp_path, environ={})
    opened = open_store(settings.db_url, str(tmp_path / "artifacts"))
    try:
        with opened.engine.begin() as conn:
            conn.execute(
                sa.insert(tables.action_outbox),
                [_action("delivered", timedelta(days=d), "r") for d in (3, 8)],
            )
        done = tend_prediction_log(settings, opened.engine, now=NOW)
        assert done["pruned_actions"] == 1  # 3 days old: inside the rule's 7-day dedupe window, kept
        left = [c.replace(tzinfo=None) for _, c in _outbox(Store(opened.engine, opened.artifacts))]
        assert left == [(NOW - timedelta(days=3)).replace(tzinfo=None)]
    finally:
        opened.engine.dispose()
