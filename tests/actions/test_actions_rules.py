"""Rules are structured data: conditions, templates, config errors; alerts enqueue in their transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from actions_support import make_settings, outbox_counts
from sqlalchemy import Engine, select

from loopml.actions import dispatch_once
from loopml.actions.rules import matches, render
from loopml.config import ActionRuleConfig
from loopml.errors import ConfigError
from loopml.store import tables, utcnow

FIELDS = {
    "score": 0.8,
    "label": 1,
    "model_name": "fraud",
    "model_version": 3,
    "inputs": {"amount": 120.5, "country": "FR", "card_id": 42},
    "output": {"label": 1},
}


def _rule(*when: dict[str, Any]) -> ActionRuleConfig:
    return ActionRuleConfig(name="r", endpoint="e", when=list(when))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "score", "op": ">=", "value": 0.8}, True),
        ({"field": "score", "op": ">", "value": 0.8}, False),
        ({"field": "score", "op": "<", "value": 0.9}, True),
        ({"field": "score", "op": "<=", "value": 0.7}, False),
        ({"field": "label", "op": "==", "value": 1}, True),
        ({"field": "label", "op": "!=", "value": 1}, False),
        ({"field": "inputs.country", "op": "in", "value": ["FR", "DE"]}, True),
        ({"field": "inputs.country", "op": "not_in", "value": ["FR", "DE"]}, False),
        ({"field": "inputs.missing", "op": ">", "value": 1}, False),  # absent: does not hold
        ({"field": "inputs.country", "op": ">", "value": 3}, False),  # text vs number: does not hold
        ({"field": "inputs.amount", "op": ">", "value": 100}, True),
    ],
)
def test_conditions(condition: dict[str, Any], expected: bool) -> None:
    assert matches(_rule(condition), FIELDS) is expected


def test_all_conditions_must_hold_and_threshold_comes_from_the_version() -> None:
    both = _rule(
        {"field": "score", "op": ">", "value": 0.5}, {"field": "inputs.country", "op": "==", "value": "DE"}
    )
    assert not matches(both, FIELDS)
    above = _rule({"field": "score", "op": ">=", "threshold": "cost_optimal"})
    assert matches(above, FIELDS, lambda name, version: 0.75 if (name, version) == ("fraud", 3) else None)
    assert not matches(above, FIELDS, lambda name, version: 0.85)
    assert not matches(above, FIELDS, lambda name, version: None)  # no threshold recorded


def test_templates_reference_fields_and_never_evaluate() -> None:
    template = {
        "card": "{inputs.card_id}",
        "text": "card {inputs.card_id} scored {score}",
        "braces": "{{literal}}",
        "nested": ["{model_name}", {"v": "{model_version}"}],
        "constant": 5,
    }
    assert render(template, FIELDS) == {
        "card": 42,
        "text": "card 42 scored 0.8",
        "braces": "{literal}",
        "nested": ["fraud", {"v": 3}],
        "constant": 5,
    }


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"when": [{"field": "scroe", "op": ">", "value": 1}]},
            "unknown prediction field 'scroe'; did you mean 'score'?",
        ),
        ({"payload": {"x": "{__import__('os').system('id')}"}}, "unknown prediction field"),
        (
            {"payload": {"x": "{inputs.a.__class__}"}},
            None,
        ),  # one level: a column named 'a.__class__', never code
        ({"when": [{"field": "score", "op": "~=", "value": 1}]}, "is '~='; valid: '!=', '<'"),
        ({"when": [{"field": "score", "op": "in", "value": 1}]}, "needs a list"),
        (
            {"event": "alert", "when": [{"field": "score", "op": ">", "value": 1}]},
            "unknown alert field 'score'",
        ),
        ({"dedupe": {"key": "{inputs.card_id}", "window": "soon"}}, "durations look like"),
    ],
)
def test_rule_mistakes_are_one_line_config_errors(
    tmp_path: Path, rule: dict[str, Any], message: str | None
) -> None:
    rules = [{"name": "r", "endpoint": "cases", **rule}]
    if message is None:
        make_settings("http://127.0.0.1:1/x", tmp_path, rules=rules)
        return
    with pytest.raises(ConfigError) as info:
        make_settings("http://127.0.0.1:1/x", tmp_path, rules=rules)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_alert_actions_are_written_with_the_alert_and_delivered(
    engine: Engine, receiver, tmp_path: Path
) -> None:
    from loopml.actions import enqueue_for_alerts
    from loopml.monitor.run import record_alerts

    rule = {
        "name": "page",
        "event": "alert",
        "endpoint": "cases",
        "when": [{"field": "kind", "op": "in", "value": ["performance", "drift"]}],
        "payload": {"text": "{model_name}: {message}", "window": "{details.window}"},
    }
    settings = make_settings(receiver.url, tmp_path, rules=[rule])
    alert = {"kind": "drift", "subject": "amount", "message": "PSI 0.4", "window_start": utcnow()}
    other = {**alert, "kind": "estimated_performance", "subject": "ap"}
    hook = enqueue_for_alerts(settings.actions)
    assert record_alerts(engine, "fraud", [alert, other], {"window": "w1"}, on_alert=hook) == 2
    assert record_alerts(engine, "fraud", [alert], {"window": "w1"}, on_alert=hook) == 0  # once per window
    assert outbox_counts(engine) == {"pending": 1}
    with engine.connect() as conn:
        row = conn.execute(select(tables.action_outbox)).one()
    assert row.event == "alert" and row.payload == {"text": "fraud: PSI 0.4", "window": "w1"}
    dispatch_once(settings, engine)
    assert [(c["text"], c["window"]) for c in receiver.cases()] == [("fraud: PSI 0.4", "w1")]


def test_whole_floats_render_like_ints_so_api_and_batch_rows_key_alike() -> None:
    api = {"inputs": {"transaction_id": 92397}, "score": 1.0}
    batch = {"inputs": {"transaction_id": 92397.0}, "score": 1.0}
    for template in ("{inputs.transaction_id}", "tx-{inputs.transaction_id}"):
        assert render(template, api) == render(template, batch)
    assert render("tx-{inputs.transaction_id}", batch) == "tx-92397"
    assert render("{score}", {"score": 0.25}) == 0.25
