"""Retraining: the policy (when), the cycle (challenger, gate, promote) and the watch (rollback)."""

from __future__ import annotations

from loopml.retrain.cron import cron_due, parse_cron
from loopml.retrain.cycle import CycleResult, run_cycle
from loopml.retrain.events import Event, list_events
from loopml.retrain.gate import GateResult, gate
from loopml.retrain.policy import Decision, Trigger, decide
from loopml.retrain.shadow import compare_shadow, shadow_pairs
from loopml.retrain.watch import check_watch, tick

__all__ = [
    "CycleResult",
    "Decision",
    "Event",
    "GateResult",
    "Trigger",
    "check_watch",
    "compare_shadow",
    "cron_due",
    "decide",
    "gate",
    "list_events",
    "parse_cron",
    "run_cycle",
    "shadow_pairs",
    "tick",
]
