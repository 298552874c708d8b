"""One retraining cycle, as recorded state transitions in ``retrain_events``:

``running`` (ingest, train) -> ``trained`` (challenger registered) -> [``shadowing``] ->
``promoted`` | ``rejected``; or ``failed`` / ``abandoned``.

A due cycle first ingests; then, when fewer rows are newer than everything the champion learned from
than the gate needs (``retrain.gate.min_rows``), it waits (``waiting``, with the reason, recorded on
the decision) instead of judging a challenger on rows the champion has seen. The challenger's holdout
holds only such rows (:class:`~loopml.train.fit.HoldoutAfter`); its judged fit learns from the older ones.

Safe to kill at any point. Every move that changes what serves is one transaction: promotion moves
the ``champion`` alias, writes its alias history and marks the event ``promoted`` together, so a
cycle killed at any point leaves the champion untouched or fully promoted, never half-way. One cycle
per model runs at a time (a store lease); the next run resumes an open cycle that got far enough
(``trained``: judge it; ``shadowing``: compare when its window is over) and abandons one that did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from loopml.config import Settings
from loopml.enums import CycleStatus, EventKind, TriggerKind
from loopml.errors import PromotionRefusedError
from loopml.monitor import MonitorReport
from loopml.registry import check_promotable, get_alias, get_version, move_alias
from loopml.retrain.events import Event, last_event, list_events, note_decision, start_event, transition
from loopml.retrain.gate import GateResult, gate
from loopml.retrain.policy import Decision, decide
from loopml.retrain.shadow import compare_shadow
from loopml.store import Store, tables, utcnow
from loopml.store.leases import lease
from loopml.train import HoldoutAfter, UnseenRows, train_and_register, unseen_rows
from loopml.validate import ingest

__all__ = ["ACTOR", "CycleResult", "challenger_settings", "run_cycle"]

ACTOR = "loopml retrain"
LEASE_TTL_S = 60.0


@dataclass(frozen=True)
class CycleResult:
    """What a cycle did (or, for a dry run, would do)."""

    decision: Decision
    ran: bool
    status: CycleStatus
    challenger_version: int | None = None
    champion_version: int | None = None
    gate: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    event_id: int | None = None

    @property
    def skipped_because(self) -> str | None:
        """Why no cycle ran (None when one did): no trigger, the cooldown, too few unseen rows, ..."""
        if self.ran:
            return None
        if self.status in (CycleStatus.WAITING, CycleStatus.SKIPPED, CycleStatus.DRY_RUN) and self.reasons:
            return "; ".join(self.reasons)
        return self.decision.skipped_because

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrain": self.decision.retrain,
            "triggers": self.decision.reasons,
            "blocked_by": self.decision.blocked_by,
            "skipped_because": self.skipped_because,
            "clock_at": _iso(self.decision.inputs.get("clock_at")),
            "configured_triggers": list(self.decision.configured),
            "hint": self.decision.hint,
            "ran": self.ran,
            "status": self.status,
            "event_id": self.event_id,
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "gate": self.gate,
            "reasons": self.reasons,
        }


def run_cycle(
    settings: Settings,
    store: Store,
    *,
    force: bool = False,
    dry_run: bool = False,
    report: MonitorReport | None = None,
    now: datetime | None = None,
    lease_ttl_s: float = LEASE_TTL_S,
) -> CycleResult:
    """Decide, then resume an open cycle or (when triggered or forced) run a new one.

    ``dry_run`` only explains. Another worker running a cycle for this model is a
    :class:`~loopml.errors.BusyError`; ``lease_ttl_s`` bounds how long a dead worker blocks the next.
    ``now``: the time on ``retrain.clock`` (read from it when None); a shadow window is measured on
    the machine's clock (``now`` too, on the wall clock).
    """
    decided_at = utcnow()
    decision = decide(settings, store, record=not dry_run, report=report, now=now)
    champion = get_alias(store.engine, settings.name, "champion")
    if dry_run:
        note = _would_wait(settings, store) if decision.retrain or force else None
        return CycleResult(
            decision, False, CycleStatus.DRY_RUN, champion_version=champion, reasons=[note] if note else []
        )
    with lease(store.engine, f"retrain:{settings.name}", ttl_s=lease_ttl_s):
        # a shadow window is wall time: ``now`` counts for it only on the wall clock
        wall = now if now is not None and settings.retrain.clock == "wall" else utcnow()
        resumed = _resume_open(settings, store, decision, wall)
        if resumed is not None:
            return resumed
        if not (decision.retrain or force):
            return CycleResult(decision, False, CycleStatus.SKIPPED, champion_version=champion)
        since = last_event(store.engine, settings.name, EventKind.CYCLE)
        if not force and since is not None and since.started_at >= decided_at:
            # Another worker ran a cycle between this decision and the lease: the decision is stale
            # (its triggers were answered, the cooldown has restarted); the next check decides again.
            why = [f"cycle {since.id} started after this decision (another worker)"]
            return CycleResult(decision, False, CycleStatus.SKIPPED, champion_version=champion, reasons=why)
        ingest(settings, store)  # nothing past the watermark is no new version: retrain on the latest
        unseen = unseen_rows(settings, store)
        if unseen is not None and unseen.waiting:
            note_decision(store.engine, decision.event_id, unseen.waiting)
            return CycleResult(
                decision, False, CycleStatus.WAITING, champion_version=champion, reasons=[unseen.waiting]
            )
        event = start_event(
            store.engine,
            settings.name,
            EventKind.CYCLE,
            reasons=decision.reasons or ["forced"],
            details=_cycle_details(decision, champion, unseen),
        )
        try:
            return _cycle(settings, store, decision, event, wall, unseen)
        except BaseException as exc:
            with store.engine.begin() as conn:
                transition(conn, event, CycleStatus.FAILED, reasons=[f"{type(exc).__name__}: {exc}"])
            raise


def challenger_settings(settings: Settings) -> Settings:
    """The settings a cycle trains its challenger with: ``retrain.train_window`` as ``train.window``."""
    window = settings.retrain.train_window
    if window is None:
        return settings
    return settings.model_copy(update={"train": settings.train.model_copy(update={"window": window})})


def _resume_open(settings: Settings, store: Store, decision: Decision, now: datetime) -> CycleResult | None:
    """Under the lease every open cycle's worker is gone: resume what can be, abandon the rest."""
    found: CycleResult | None = None
    for event in reversed(list_events(store.engine, settings.name, EventKind.CYCLE, limit=50)):
        if event.status is CycleStatus.RUNNING:
            with store.engine.begin() as conn:
                transition(
                    conn,
                    event.id,
                    CycleStatus.ABANDONED,
                    reasons=["its worker stopped before a challenger was ready"],
                )
        elif event.status is CycleStatus.TRAINED and event.challenger_version is not None:
            found = _judge(settings, store, decision, event.id, event.challenger_version, now)
        elif event.status is CycleStatus.SHADOWING:
            found = _after_shadow(settings, store, decision, event, now)
    return found


def _would_wait(settings: Settings, store: Store) -> str | None:
    """A dry run's answer on the rows newer than the champion's training data: why a cycle would wait
    (judged on the latest snapshot: a real cycle first ingests what the source holds beyond it)."""
    unseen = unseen_rows(settings, store)
    if unseen is None or not unseen.waiting:
        return None
    return f"{unseen.waiting} (on the latest snapshot; a cycle first ingests new source data)"


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _cycle_details(decision: Decision, champion: int | None, unseen: UnseenRows | None) -> dict[str, Any]:
    """What a new cycle records at its start: the champion, when on the policy's clock, the alert it
    answers (the ``after_alert`` trigger) and the rows newer than the champion's training data."""
    details: dict[str, Any] = {"step": "ingesting", "champion": champion}
    details["clock_at"] = _iso(decision.inputs.get("clock_at"))
    alert = decision.inputs.get("alert")
    if alert and any(t.kind is TriggerKind.AFTER_ALERT for t in decision.triggers):
        details["answers_alert"] = alert["id"]
    if unseen is not None:
        details["unseen"] = {"cutoff": str(unseen.cutoff), "rows": unseen.rows}
    return details


def _cycle(
    settings: Settings, store: Store, decision: Decision, event: int, now: datetime, unseen: UnseenRows | None
) -> CycleResult:
    with store.engine.begin() as conn:
        transition(
            conn, event, CycleStatus.RUNNING, expect=(CycleStatus.RUNNING,), details={"step": "training"}
        )
    refit = settings.retrain.refit  # the gate judges the fit without its window; the refit serves
    after = None if unseen is None else HoldoutAfter(unseen.cutoff, settings.retrain.gate.unseen_share)
    challenger = train_and_register(
        challenger_settings(settings), store, promote_if_first=False, refit=refit, holdout_after=after
    ).version.version
    refused = _refusal(store, settings.name, challenger, "challenger")  # what was written must load
    with store.engine.begin() as conn:
        transition(
            conn, event, CycleStatus.TRAINED, expect=(CycleStatus.RUNNING,), challenger_version=challenger
        )
        if refused is None:
            reason = f"retrain cycle {event}"
            move_alias(conn, settings.name, "challenger", challenger, reason=reason, actor=ACTOR)
    if refused is not None:
        return _refused(settings, store, decision, event, challenger, GateResult(True, []), refused)
    return _judge(settings, store, decision, event, challenger, now)


def _refusal(store: Store, name: str, version: int, alias: str) -> PromotionRefusedError | None:
    """Why ``version``'s artifact may not take ``alias`` (it fails its SHA-256 or safe-load check)."""
    try:
        check_promotable(store, name, version, alias)
    except PromotionRefusedError as exc:
        return exc
    return None


def _refused(
    settings: Settings,
    store: Store,
    decision: Decision,
    event: int,
    challenger: int,
    verdict: GateResult,
    exc: PromotionRefusedError,
) -> CycleResult:
    """A challenger whose artifact fails its check is rejected, with the reason; the champion stays."""
    checks = [*verdict.checks, {"check": "artifact", "passed": False, "detail": str(exc)}]
    refused = GateResult(False, checks)
    return _reject(settings, store, decision, event, challenger, refused, [str(exc)], {"gate": checks})


def _judge(
    settings: Settings, store: Store, decision: Decision, event: int, challenger: int, now: datetime
) -> CycleResult:
    """Gate a trained challenger; then shadow it, or promote it."""
    if get_alias(store.engine, settings.name, "champion") is None:
        verdict = GateResult(True, [{"check": "first_model", "passed": True, "detail": "first model"}])
        return _promote(settings, store, decision, event, challenger, verdict, "first model")
    metrics = get_version(store.engine, settings.name, challenger).metrics
    verdict = gate(metrics, settings.retrain.gate)
    details = {"gate": verdict.checks, "score": metrics.get("score"), "champion": metrics.get("champion")}
    if not verdict.passed:
        return _reject(settings, store, decision, event, challenger, verdict, verdict.reasons, details)
    gained = next((c["detail"] for c in verdict.checks if c["check"] == "beats_champion"), "gate passed")
    if settings.retrain.shadow:
        with store.engine.begin() as conn:
            transition(
                conn,
                event,
                CycleStatus.SHADOWING,
                expect=(CycleStatus.TRAINED,),
                details={**details, "shadow_since": now.isoformat(), "gained": gained},
            )
        return _result(settings, store, decision, event, CycleStatus.SHADOWING, challenger, verdict, [gained])
    return _promote(settings, store, decision, event, challenger, verdict, gained, details)


def _after_shadow(
    settings: Settings, store: Store, decision: Decision, event: Event, now: datetime
) -> CycleResult:
    """A shadowing cycle: wait for its window and labels, then compare on the same live rows."""
    challenger = int(event.challenger_version or 0)
    verdict = GateResult(True, list(event.details.get("gate", [])))
    outcome = compare_shadow(settings, store, event, now)
    if outcome is None:
        return _result(settings, store, decision, event.id, CycleStatus.SHADOWING, challenger, verdict, [])
    passed, detail, summary = outcome
    checks = [*verdict.checks, {"check": "shadow", "passed": passed, "detail": detail}]
    verdict = GateResult(passed, checks)
    details = {"gate": checks, "shadow": summary}
    if not passed:
        return _reject(settings, store, decision, event.id, challenger, verdict, [detail], details)
    return _promote(settings, store, decision, event.id, challenger, verdict, detail, details)


def _promote(
    settings: Settings,
    store: Store,
    decision: Decision,
    event: int,
    challenger: int,
    verdict: GateResult,
    why: str,
    details: dict[str, Any] | None = None,
) -> CycleResult:
    """One transaction: the event becomes ``promoted`` and both aliases move, with their history.

    First the challenger's artifact is checked (SHA-256, safe load): one that fails is rejected,
    with the reason, and the champion stays."""
    refused = _refusal(store, settings.name, challenger, "champion")
    if refused is not None:
        return _refused(settings, store, decision, event, challenger, verdict, refused)
    with store.engine.begin() as conn:
        if not transition(conn, event, CycleStatus.PROMOTED, details=details or {"gate": []}, reasons=[why]):
            return _result(settings, store, decision, event, CycleStatus.ABANDONED, challenger, verdict, [])
        reason = f"retrain cycle {event}: {why}"
        move_alias(conn, settings.name, "champion", challenger, reason=reason, actor=ACTOR)
        _point_challenger(conn, settings.name, challenger, reason)
    return _result(settings, store, decision, event, CycleStatus.PROMOTED, challenger, verdict, [why])


def _reject(
    settings: Settings,
    store: Store,
    decision: Decision,
    event: int,
    challenger: int,
    verdict: GateResult,
    reasons: list[str],
    details: dict[str, Any],
) -> CycleResult:
    """The event becomes ``rejected`` and the ``challenger`` alias goes back to the champion."""
    champion = get_alias(store.engine, settings.name, "champion")
    with store.engine.begin() as conn:
        if transition(conn, event, CycleStatus.REJECTED, details=details, reasons=reasons) and champion:
            _point_challenger(conn, settings.name, champion, f"retrain cycle {event}: challenger rejected")
    return _result(settings, store, decision, event, CycleStatus.REJECTED, challenger, verdict, reasons)


def _point_challenger(conn: Connection, name: str, version: int, reason: str) -> None:
    """``challenger`` equal to ``champion`` means: nothing to shadow."""
    ma = tables.model_aliases
    current = conn.execute(select(ma.c.version).where(ma.c.name == name, ma.c.alias == "challenger")).scalar()
    if current != version:
        move_alias(conn, name, "challenger", version, reason=reason, actor=ACTOR)


def _result(
    settings: Settings,
    store: Store,
    decision: Decision,
    event: int,
    status: CycleStatus,
    challenger: int,
    verdict: GateResult,
    reasons: list[str],
) -> CycleResult:
    champion = get_alias(store.engine, settings.name, "champion")
    return CycleResult(decision, True, status, challenger, champion, verdict.checks, reasons, event)
