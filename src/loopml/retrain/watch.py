"""After a promotion: the watch window, during which an alarm rolls the champion back by itself;
and ``tick``, one step of ``loopml worker``."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from loopml.actions import enqueue_for_alerts
from loopml.config import Settings
from loopml.enums import CycleStatus, EventKind
from loopml.errors import PromotionRefusedError
from loopml.features import parse_duration
from loopml.monitor import run_monitor
from loopml.registry import alias_history, check_promotable, get_alias, move_alias
from loopml.retrain.cycle import ACTOR, CycleResult, run_cycle
from loopml.retrain.events import start_event
from loopml.retrain.perf import own_performance
from loopml.store import Store, tables, utcnow

__all__ = ["check_watch", "tick"]

log = logging.getLogger(__name__)


def tick(settings: Settings, store: Store) -> tuple[dict[str, Any] | None, CycleResult]:
    """One worker step on one monitoring pass: watch the last promotion, then run the policy."""
    report = None
    if get_alias(store.engine, settings.name, "champion") is not None:
        report = run_monitor(
            store, settings.name, settings.monitor, record=True, on_alert=enqueue_for_alerts(settings.actions)
        )
    rolled = check_watch(settings, store)
    return rolled, run_cycle(settings, store, report=None if rolled else report)


def check_watch(settings: Settings, store: Store) -> dict[str, Any] | None:
    """Roll back a promotion made by a cycle if, within the watch window, an alarm fires for it.

    The alarm is the monitor's performance floors (realized or estimated) on the promoted version's
    own predictions. The alias move and its ``rollback`` event are one transaction. Returns the rollback
    made, if any.
    """
    moves = [m for m in alias_history(store.engine, settings.name, "champion") if m.actor == ACTOR]
    if not moves or get_alias(store.engine, settings.name, "champion") != moves[-1].version:
        return None
    promoted = moves[-1]
    if utcnow() - promoted.created_at > timedelta(milliseconds=parse_duration(settings.retrain.watch)):
        return None
    if promoted.previous_version is None or promoted.version is None:
        return None
    alarms = _alarms(settings, store, promoted.version)
    if not alarms:
        return None
    return _roll_back(settings, store, promoted.version, promoted.previous_version, alarms[0])


def _alarms(settings: Settings, store: Store, version: int) -> list[str]:
    """The monitor's floors, on the promoted version's own predictions only (not the traffic its
    predecessor served, whose labels may still be arriving)."""
    own = own_performance(settings, store, version)
    found = []
    for kind, values, floors in (
        ("performance", own["realized"] or {}, settings.monitor.performance_floor),
        ("estimated performance", own["estimated"], settings.monitor.estimated_floor),
    ):
        for metric, floor in floors.items():
            value = values.get(metric)
            if value is not None and np.isfinite(value) and value < floor:
                found.append(f"{kind} {metric} = {value:.4f} is under {floor} (v{version}'s own predictions)")
    return found


def _roll_back(settings: Settings, store: Store, current: int, to: int, why: str) -> dict[str, Any] | None:
    """Move both aliases back to ``to``, once its artifact passed its checks. A version that fails
    them is not served: the rollback is recorded as ``failed`` with the reason, logged at ERROR, and
    the champion stays."""
    try:
        check_promotable(store, settings.name, to, "champion")
    except PromotionRefusedError as exc:
        log.error("watch alarm on %s v%s (%s), but no rollback: %s", settings.name, current, why, exc)
        start_event(
            store.engine,
            settings.name,
            EventKind.ROLLBACK,
            status=CycleStatus.FAILED,
            reasons=[why, str(exc)],
            details={"from": current, "to": to, "refused": exc.code},
        )
        return None
    ma = tables.model_aliases
    with store.engine.begin() as conn:
        now = conn.execute(
            select(ma.c.version).where(ma.c.name == settings.name, ma.c.alias == "champion").with_for_update()
        ).scalar()
        if now != current:  # someone moved it meanwhile: leave their choice alone
            return None
        move_alias(conn, settings.name, "champion", to, reason=f"watch alarm: {why}", actor=ACTOR)
        move_alias(conn, settings.name, "challenger", to, reason=f"watch alarm: {why}", actor=ACTOR)
        start_event(
            store.engine,
            settings.name,
            EventKind.ROLLBACK,
            status=CycleStatus.DONE,
            reasons=[why],
            details={"from": current, "to": to},
            conn=conn,
        )
    return {"from": current, "to": to, "reason": why}
