"""The SQL and log plugins driven by the real dispatcher, from a project file, as ``loopml worker`` runs
them: relative paths start at the project, and a re-sent batch (a crash before mark-sent) changes nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy import Engine

from loopml.actions import dispatch_once, enqueue_for_predictions
from loopml.config import parse_settings
from loopml.store import tables, utcnow, write_predictions


def _settings(project: Path) -> Any:
    actions = {
        "endpoints": {
            "audit": {"kind": "log", "path": "logs/actions.jsonl"},
            "blocks": {
                "kind": "sql",
                "url": "sqlite:///erp/blocks.db",
                "table": "card_blocks",
                "mode": "upsert",
                "key": ["card_id"],
                "key_column": "action_key",
                "create": True,
            },
        },
        "rules": [
            {"name": "audit-all", "endpoint": "audit"},
            {
                "name": "block-card",
                "when": [{"field": "score", "op": ">=", "value": 0.5}],
                "endpoint": "blocks",
                "payload": {"card_id": "{inputs.card_id}", "score": "{score}"},
            },
        ],
    }
    project_file = {
        "name": "fraud",
        "source": {"kind": "csv", "path": "x.csv"},
        "target": "y",
        "actions": actions,
    }
    return parse_settings(yaml.safe_dump(project_file), project_dir=project, environ={})


def _predictions(n: int) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "id": str(uuid.uuid4()),
            "model_name": "fraud",
            "model_version": 1,
            "created_at": now,
            "origin": "api",
            "inputs": {"transaction_id": i, "card_id": f"card-{i % 3}"},
            "score": 0.9 if i % 2 else 0.1,
            "output": {"score": 0.9 if i % 2 else 0.1},
        }
        for i in range(n)
    ]


def test_sql_and_log_endpoints_through_the_dispatcher(engine: Engine, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    settings = _settings(project)
    write_predictions(engine, _predictions(12), on_write=enqueue_for_predictions(settings.actions))
    assert dispatch_once(settings, engine, timeout=30) == 18  # 12 audit lines + 6 blocks
    o = tables.action_outbox
    with engine.begin() as conn:  # as if the worker died before marking them sent: all go again
        conn.execute(sa.update(o).values(status="pending", next_attempt_at=utcnow()))
    assert dispatch_once(settings, engine, timeout=30) == 18
    lines = [json.loads(line) for line in (project / "logs" / "actions.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and len({line["key"] for line in lines}) == 12
    blocks = sa.create_engine(f"sqlite:///{project / 'erp' / 'blocks.db'}")
    with blocks.connect() as conn:
        rows = conn.execute(sa.text("SELECT card_id, score FROM card_blocks ORDER BY card_id")).all()
    blocks.dispose()
    assert [tuple(r) for r in rows] == [("card-0", 0.9), ("card-1", 0.9), ("card-2", 0.9)]
