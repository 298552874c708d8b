"""The dashboard's data: per-window aggregates computed in SQL, cached, refreshed off the request path.

:meth:`Monitor.dashboard <loopml.project.monitor.Monitor.dashboard>` reads the aggregates of the
prediction log per ``monitor.window`` (:func:`loopml.monitor.window_aggregates`) from an artifact
(``monitor/<model>/window-aggregates-<window>.npz``). When the log has moved on (its prediction or
label count differs) they are computed again: at once while the log is small (``SYNC_ROWS``),
otherwise in one background thread per project (once they are ``MIN_AGE_S`` old) while the page
shows the last aggregates with their time. The newest aggregates, and the figures folded from
them, are kept in memory too, so a page costs a few small queries whatever the log holds.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopml.enums import EventKind
from loopml.features import parse_duration
from loopml.monitor import (
    LEVEL_COLOURS,
    PSI_WARN,
    WindowAggregates,
    log_totals,
    reference_profile,
    window_aggregates,
    window_drift,
    window_summaries,
)
from loopml.registry import AliasChange, ModelVersion, alias_history, list_versions, resolve
from loopml.retrain import list_events
from loopml.store import latest_monitor_pass
from loopml.tasks import get_task

if TYPE_CHECKING:
    from loopml.project.actions import ActionSummary
    from loopml.project.core import Project

__all__ = ["SYNC_ROWS", "AggregateCache", "DashboardData"]

log = logging.getLogger(__name__)

SYNC_ROWS = 20_000  # up to this many logged predictions, stale aggregates are computed during the request
MIN_AGE_S = 30.0  # beyond, aggregates younger than this are shown as they are (no refresh yet)


@dataclass(frozen=True)
class DashboardData:
    """Everything the dashboard shows, as plain data.

    ``performance``: one entry per window (``window_start``, ``predictions``, ``labels``,
    ``label_coverage``, ``versions``: predictions per version, ``realized`` and, for a binary
    classifier, ``positives`` and the label-free ``estimated`` metrics); ``drift``: one entry per
    window and profiled column (``psi``, ``js``, ``p_value``, ``drifted``, ``level``: ok, warn or
    alert, coloured with ``level_colours``); ``served_by``: the version
    that made most predictions in each window; ``as_of``: when the aggregates were computed, and
    ``refreshing`` whether newer ones are being computed; ``latest_pass``: the newest recorded
    monitoring pass (drift of every input the model consumes, performance with its estimate)."""

    model: str
    actions: ActionSummary
    champion: int | None = None
    window: str = ""
    window_ms: int = 0
    metric: str | None = None
    task: str | None = None
    as_of: str | None = None
    refreshing: bool = False
    versions: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    performance: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    cycles: list[dict[str, Any]] = field(default_factory=list)
    served_by: list[dict[str, Any]] = field(default_factory=list)
    latest_pass: dict[str, Any] | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    level_colours: dict[str, str] = field(default_factory=lambda: dict(LEVEL_COLOURS))

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "actions"}
        return {**out, "actions": self.actions.to_dict()}


class AggregateCache:
    """The cached window aggregates of one project, and the single background refresh."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None
        self._held: WindowAggregates | None = None  # the newest aggregates, kept in memory
        self._folded: tuple[tuple[Any, ...], list[dict[str, Any]], list[dict[str, Any]]] | None = None

    @property
    def _key(self) -> str:
        return f"monitor/{self._project.name}/window-aggregates-{self._project.settings.monitor.window}.npz"

    def cached(self) -> WindowAggregates | None:
        artifacts = self._project.store.artifacts
        if not artifacts.exists(self._key):
            return None
        try:
            return WindowAggregates.from_bytes(artifacts.get_bytes(self._key))
        except (ValueError, TypeError, KeyError, OSError):  # another loopml version's: compute again
            return None

    def compute(self) -> WindowAggregates:
        """Aggregate the log now (SQL) and keep the result."""
        project = self._project
        engine, settings = project.store.engine, project.settings
        champion = resolve(engine, project.name, settings.serve.alias)
        task = get_task(champion.task)
        found = window_aggregates(
            engine,
            project.name,
            window_ms=int(parse_duration(settings.monitor.window)),
            event_time=champion.signature.get("event_time"),
            probabilities=task.positive_class,
            threshold=champion.signature.get("threshold"),
            profile=reference_profile(project.store, champion),
            inputs=list(champion.signature.get("input_columns", [])),
        )
        project.store.artifacts.put_bytes(self._key, found.to_bytes())
        self._held = found
        return found

    def refreshing(self) -> bool:
        return self._running is not None and self._running.is_alive()

    def refresh_in_background(self) -> None:
        """Start computing fresh aggregates in a daemon thread, unless one is running already."""
        with self._lock:
            if self.refreshing():
                return
            self._running = threading.Thread(target=self._refresh, name="loopml-dashboard", daemon=True)
            self._running.start()

    def _refresh(self) -> None:
        try:
            self.compute()
        except Exception as exc:  # the page keeps showing the last aggregates; say why in the log
            log.error("could not refresh the dashboard's aggregates: %s", exc)

    def current(self, *, fresh: bool) -> WindowAggregates | None:
        """The aggregates to show: computed now when ``fresh`` or the log is small and moved on;
        else the newest ones (in memory, else from the artifact store), a background refresh
        started when the log moved on since."""
        totals = log_totals(self._project.store.engine, self._project.name)
        if fresh:
            return self.compute()
        found = self._held
        if found is None:
            found = self._held = self.cached()
        if found is not None and (found.predictions, found.labels) == totals:
            return found
        if totals[0] <= SYNC_ROWS:
            return self.compute()
        if found is None or _age_s(found) >= MIN_AGE_S:
            self.refresh_in_background()
        return found

    def folded(
        self, champion: ModelVersion, agg: WindowAggregates | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Per-window summaries and drift from ``agg`` (folded once per aggregates and champion)."""
        if agg is None:
            return [], []
        key = (agg.computed_at, agg.predictions, agg.labels, champion.version)
        memo = self._folded
        if memo is not None and memo[0] == key:
            return memo[1], memo[2]
        summaries, drift = _windows(self._project, champion, agg)
        self._folded = (key, summaries, drift)
        return summaries, drift


def _age_s(agg: WindowAggregates) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(agg.computed_at)).total_seconds()


def build_dashboard(project: Project, cache: AggregateCache, *, fresh: bool = False) -> DashboardData:
    """The dashboard's data; see :class:`DashboardData`."""
    engine, name, settings = project.store.engine, project.name, project.settings
    actions = project.actions.summary(dead_recent=10)
    versions = list_versions(engine, name)
    if not versions:
        window_ms = int(parse_duration(settings.monitor.window))
        return DashboardData(name, actions, window=settings.monitor.window, window_ms=window_ms)
    champion = resolve(engine, name, settings.serve.alias)
    agg = cache.current(fresh=fresh)
    summaries, drift = cache.folded(champion, agg)
    config = settings.monitor
    return DashboardData(
        model=name,
        actions=actions,
        champion=champion.version,
        window=config.window,
        window_ms=int(parse_duration(config.window)),
        metric=champion.metrics.get("metric"),
        task=str(champion.task),
        as_of=agg.computed_at if agg is not None else None,
        refreshing=cache.refreshing(),
        versions=[_version(v) for v in versions],
        history=[_move(h) for h in reversed(alias_history(engine, name))],
        performance=summaries,
        drift=drift,
        alerts=[
            {"at": str(a.created_at)[:19], "kind": str(a.kind), "message": a.message}
            for a in project.monitor.alerts(limit=500)
        ],
        cycles=_cycles(project),
        served_by=[
            {"window_start": s["window_start"], "version": max(s["versions"], key=s["versions"].get)}
            for s in summaries
            if s["versions"]
        ],
        latest_pass=_latest_pass(project),
        thresholds={"psi": config.psi_threshold, "js": config.js_threshold, "psi_warn": PSI_WARN},
    )


def _windows(
    project: Project, champion: ModelVersion, agg: WindowAggregates
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    config = project.settings.monitor
    task = get_task(champion.task)
    errors = not task.positive_class and task.numeric_labels and task.profile_prediction == "numeric"
    summaries = window_summaries(agg, binary=task.positive_class, errors=errors, min_labels=config.min_labels)
    profile = reference_profile(project.store, champion)
    drift = (
        window_drift(
            agg,
            profile,
            psi_threshold=config.psi_threshold,
            js_threshold=config.js_threshold,
            alpha=config.alpha,
            min_rows=config.min_rows,
        )
        if profile is not None
        else []
    )
    return summaries, drift


def _latest_pass(project: Project) -> dict[str, Any] | None:
    found = latest_monitor_pass(project.store.engine, project.name)
    if found is None:
        return None
    return {"at": str(found.created_at)[:19], "version": found.model_version, **found.summary}


def _cycles(project: Project) -> list[dict[str, Any]]:
    """The retraining loop's cycles and rollbacks, newest first."""
    return [
        {
            "at": str(e.started_at)[:19],
            "kind": str(e.kind),
            "status": str(e.status),
            "challenger": e.challenger_version,
            "why": "; ".join(e.reasons),
        }
        for e in list_events(project.store.engine, project.name, limit=500)
        if e.kind in (EventKind.CYCLE, EventKind.ROLLBACK)
    ]


def _version(v: ModelVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "aliases": list(v.aliases),
        "score": v.metrics.get("score"),
        "metric": v.metrics.get("metric"),
        "dataset_version": v.metrics.get("dataset_version"),
        "created_at": str(v.created_at)[:19],
    }


def _move(h: AliasChange) -> dict[str, Any]:
    change = asdict(h)
    return {
        "at": str(change["created_at"])[:19],
        "alias": change["alias"],
        "from": change["previous_version"],
        "to": change["version"],
        "actor": change["actor"],
        "reason": change["reason"],
    }
