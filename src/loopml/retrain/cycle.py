"""One retraining cycle: ingest, train a challenger, gate it against the champion on the same newest
labelled rows, promote (an alias move recorded with its reason), and watch it afterwards.

The alias move is the only step that changes what serves, and it is one transaction: a cycle killed
at any point leaves the champion either untouched or fully promoted, never half-way. A cycle found
``running`` after its owner died is marked ``abandoned`` by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from loopml.config import Settings
from loopml.errors import LoopMLError
from loopml.features import parse_duration
from loopml.monitor import MonitorReport, run_monitor
from loopml.registry import alias_history, get_alias, rollback, set_alias, train_and_register
from loopml.retrain.events import finish_event, list_events, start_event
from loopml.retrain.gate import gate
from loopml.retrain.policy import Decision, decide
from loopml.store import Store, utcnow
from loopml.validate import ingest

__all__ = ["CycleResult", "check_watch", "run_cycle", "tick"]

ACTOR = "loopml retrain"
STALE = timedelta(hours=6)


@dataclass(frozen=True)
class CycleResult:
    """What a cycle did (or, for a dry run, would do)."""

    decision: Decision
    ran: bool
    status: str
    challenger_version: int | None = None
    champion_version: int | None = None
    gate: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrain": self.decision.retrain,
            "triggers": self.decision.reasons,
            "blocked_by": self.decision.blocked_by,
            "ran": self.ran,
            "status": self.status,
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "gate": self.gate,
            "reasons": self.reasons,
        }


def _abandon_stale(settings: Settings, store: Store) -> None:
    for event in list_events(store.engine, settings.name, "cycle", limit=20):
        if event.status == "running" and event.started_at + STALE < utcnow():
            finish_event(
                store.engine, event.id, "abandoned", reasons=["its worker stopped before it finished"]
            )


def run_cycle(
    settings: Settings,
    store: Store,
    *,
    force: bool = False,
    dry_run: bool = False,
    report: MonitorReport | None = None,
) -> CycleResult:
    """Decide, then (when triggered or forced) run one cycle; ``dry_run`` only explains."""
    decision = decide(settings, store, record=not dry_run, report=report)
    if dry_run or not (decision.retrain or force):
        status = "dry_run" if dry_run else "skipped"
        return CycleResult(
            decision, False, status, champion_version=get_alias(store.engine, settings.name, "champion")
        )
    _abandon_stale(settings, store)
    event = start_event(store.engine, settings.name, "cycle", reasons=decision.reasons or ["forced"])
    try:
        result = _cycle(settings, store, decision, event)
    except Exception as exc:
        finish_event(store.engine, event, "failed", reasons=[f"{type(exc).__name__}: {exc}"])
        raise
    return result


def _cycle(settings: Settings, store: Store, decision: Decision, event: int) -> CycleResult:
    try:
        ingest(settings, store)
    except LoopMLError as exc:  # no new data is not fatal: retrain on the latest snapshot
        if "no new" not in str(exc).lower():
            raise
    outcome = train_and_register(settings, store)
    challenger = outcome.version
    set_alias(
        store.engine,
        settings.name,
        "challenger",
        challenger.version,
        reason=f"retrain cycle {event}",
        actor=ACTOR,
    )
    if outcome.promoted:  # the very first model: nothing to beat
        finish_event(
            store.engine,
            event,
            "promoted",
            challenger_version=challenger.version,
            reasons=["first model"],
            details={"gate": []},
        )
        return CycleResult(
            decision, True, "promoted", challenger.version, challenger.version, [], ["first model"]
        )
    verdict = gate(challenger.metrics, settings.retrain.gate)
    details = {
        "gate": verdict.checks,
        "score": challenger.metrics.get("score"),
        "champion": challenger.metrics.get("champion"),
    }
    if not verdict.passed:
        finish_event(
            store.engine,
            event,
            "rejected",
            challenger_version=challenger.version,
            reasons=verdict.reasons,
            details=details,
        )
        champion = get_alias(store.engine, settings.name, "champion")
        return CycleResult(
            decision, True, "rejected", challenger.version, champion, verdict.checks, verdict.reasons
        )
    gained = next((c["detail"] for c in verdict.checks if c["check"] == "beats_champion"), "gate passed")
    set_alias(
        store.engine,
        settings.name,
        "champion",
        challenger.version,
        reason=f"retrain cycle {event}: {gained}",
        actor=ACTOR,
    )
    finish_event(
        store.engine,
        event,
        "promoted",
        challenger_version=challenger.version,
        reasons=[gained],
        details=details,
    )
    return CycleResult(
        decision, True, "promoted", challenger.version, challenger.version, verdict.checks, [gained]
    )


def tick(settings: Settings, store: Store) -> tuple[dict[str, Any] | None, CycleResult]:
    """One worker step on one monitoring pass: watch the last promotion, then run the policy."""
    report = None
    if get_alias(store.engine, settings.name, "champion") is not None:
        report = run_monitor(store, settings.name, settings.monitor, record=True)
    rolled = check_watch(settings, store, report=report)
    return rolled, run_cycle(settings, store, report=None if rolled else report)


def check_watch(
    settings: Settings, store: Store, *, report: MonitorReport | None = None
) -> dict[str, Any] | None:
    """Roll back a promotion made by a cycle if, within the watch window, an alarm fires for it.

    The alarm is the monitor's performance floors (realized or estimated) on windows after the
    promotion. Returns the rollback made, if any.
    """
    moves = [m for m in alias_history(store.engine, settings.name, "champion") if m.actor == ACTOR]
    if not moves or get_alias(store.engine, settings.name, "champion") != moves[-1].version:
        return None
    promoted = moves[-1]
    at = (
        promoted.created_at
        if promoted.created_at.tzinfo
        else promoted.created_at.replace(tzinfo=utcnow().tzinfo)
    )
    if utcnow() - at > timedelta(milliseconds=parse_duration(settings.retrain.watch)):
        return None
    if report is None or report.model_version != promoted.version:
        report = run_monitor(store, settings.name, settings.monitor, record=True)
    alarms = [a for a in report.alerts if a["kind"] in ("performance", "estimated_performance")]
    if not alarms or promoted.previous_version is None:
        return None
    change = rollback(
        store.engine, settings.name, "champion", reason=f"watch alarm: {alarms[0]['message']}", actor=ACTOR
    )
    start_event(
        store.engine,
        settings.name,
        "rollback",
        status="done",
        reasons=[alarms[0]["message"]],
        details={"from": change.previous_version, "to": change.version},
    )
    return {"from": change.previous_version, "to": change.version, "reason": alarms[0]["message"]}
