"""``project.actions``: the outbox of actions that predictions and alerts triggered, its deliveries,
dead letters and replays."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopml.actions import action_summary, dispatch_once, open_action, recent_actions, replay
from loopml.enums import ActionStatus
from loopml.errors import InputError, NotFoundError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from loopml.project.core import Project

__all__ = ["ActionRecord", "ActionSummary", "Actions", "ReplayResult"]


@dataclass(frozen=True)
class ActionRecord:
    """One action in the outbox."""

    id: int
    key: str
    rule: str
    endpoint: str
    kind: str
    status: ActionStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ActionSummary:
    """Counts per status, per action kind and per endpoint, the endpoints disabled by HTTP 410, the
    endpoints that are down (``endpoint``, ``down_since``, ``failures``, ``next_probe_at``,
    ``last_error``, ``alerted``: an ``endpoint_down`` alert was raised), the retry schedule's longest
    delay and its horizon (seconds an action is retried before it is dead), and (when asked for) the
    newest dead actions."""

    pending: int
    delivered: int
    dead: int
    suppressed: int
    total: int
    by_kind: dict[str, dict[str, int]]
    by_endpoint: dict[str, dict[str, int]]
    disabled_endpoints: list[dict[str, Any]]
    down_endpoints: list[dict[str, Any]] = field(default_factory=list)
    max_delay_s: float = 0.0
    retry_horizon_s: float = 0.0
    dead_recent: list[ActionRecord] = field(default_factory=list)

    def count(self, status: ActionStatus) -> int:
        return int(getattr(self, status.value))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dead_recent"] = [a.to_dict() for a in self.dead_recent]
        return out


@dataclass(frozen=True)
class ReplayResult:
    """How many dead actions went back to the queue, and the endpoints re-enabled."""

    replayed: int
    enabled: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Actions:
    """``project.actions``: what the outbox holds, and delivering it."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def summary(self, *, dead_recent: int = 0) -> ActionSummary:
        """Counts per status, kind and endpoint, disabled endpoints, and the ``dead_recent`` newest
        dead actions."""
        found = action_summary(self._project.store.engine)
        found = {k: found[k] for k in ActionSummary.__dataclass_fields__ if k in found}
        dead = self.recent(status=ActionStatus.DEAD, limit=dead_recent) if dead_recent else []
        config = self._project.settings.actions
        return ActionSummary(
            **found,
            max_delay_s=config.max_delay_s,
            retry_horizon_s=config.retry_horizon_s,
            dead_recent=dead,
        )

    def recent(self, *, status: ActionStatus | str | None = None, limit: int = 20) -> list[ActionRecord]:
        """The newest actions (of one status when given), newest first."""
        rows = recent_actions(self._project.store.engine, status=status, limit=limit)
        return [ActionRecord(**{**r, "status": ActionStatus(r["status"])}) for r in rows]

    def replay(self, *, ids: list[int] | None = None, endpoint: str | None = None) -> ReplayResult:
        """Re-queue dead actions (all of them, the given ids, or one endpoint's) and re-enable
        endpoints disabled by HTTP 410. A replayed action keeps its idempotency key."""
        return ReplayResult(**replay(self._project.store.engine, ids=ids, endpoint=endpoint))

    def dispatch(self, *, timeout: float = 60.0) -> int:
        """Deliver every due action now (what the worker does continuously); returns the number of
        delivery attempts."""
        return dispatch_once(self._project.settings, self._project.store.engine, timeout=timeout)

    def sql_rows(self, endpoint: str) -> pd.DataFrame:
        """What the ``sql`` endpoint ``endpoint`` (``actions.endpoints`` in loopml.yaml) has
        written: every row of its table, read with the endpoint's own connection settings; an empty
        frame until a first delivery creates the table.

        A :class:`NotFoundError` for an unknown endpoint, an :class:`InputError` for one of
        another kind (a webhook, a queue: what they received lives in the system they deliver to).
        """
        from loopml.actions.sql import SqlAction

        config = self._project.settings.actions
        found = config.endpoints.get(endpoint)
        if found is None:
            known = did_you_mean(endpoint, config.endpoints) or "loopml.yaml defines none."
            raise NotFoundError(f"no action endpoint '{endpoint}'; {known}")
        if found.kind != SqlAction.kind:
            raise InputError(
                f"action endpoint '{endpoint}' is a {found.kind} endpoint; only an sql endpoint's "
                "table can be read back."
            )
        action = open_action(endpoint, config, self._project.directory)
        try:
            if not isinstance(action, SqlAction):  # 'sql' taken over by a third-party plugin
                raise InputError(f"action endpoint '{endpoint}' is not loopml's sql action.")
            return action.rows()
        finally:
            action.close()
