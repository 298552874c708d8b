"""``project.monitor``: drift, realized and estimated performance, alerts, and the dashboard's data."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.actions import enqueue_for_alerts, enqueue_for_predictions
from loopml.enums import AlertKind, EventKind
from loopml.features import parse_duration
from loopml.monitor import (
    Alert,
    MonitorReport,
    alert_counts,
    compare,
    current_inputs,
    list_alerts,
    load_predictions,
    reference_profile,
    run_monitor,
    windowed_performance,
)
from loopml.registry import ModelVersion, alias_history, list_versions, resolve
from loopml.retrain import list_events
from loopml.store import journal_dir, replay_journal

if TYPE_CHECKING:
    from loopml.project.actions import ActionSummary
    from loopml.project.core import Project

__all__ = ["DashboardData", "Monitor"]


@dataclass(frozen=True)
class DashboardData:
    """Everything the dashboard shows, as plain data: versions and their alias history, performance
    and drift per window, alerts, the retraining loop's events, which version served each window,
    and the action outbox."""

    model: str
    actions: ActionSummary
    champion: int | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    performance: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    cycles: list[dict[str, Any]] = field(default_factory=list)
    served_by: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "actions"}
        return {**out, "actions": self.actions.to_dict()}


class Monitor:
    """``project.monitor``: how the served model is doing."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def run(self, ref: str | int = "champion", *, record: bool = True) -> MonitorReport:
        """Drift and performance of the latest window (``monitor.window``), alerts recorded (and
        the actions they trigger queued, in the same transaction) unless ``record`` is False.

        Predictions a killed API acknowledged but had not written yet are stored first, so they count.
        """
        project = self._project
        settings = project.settings
        replay_journal(
            project.store.engine, journal_dir(settings), on_write=enqueue_for_predictions(settings.actions)
        )
        return run_monitor(
            project.store,
            project.name,
            settings.monitor,
            ref=ref,
            record=record,
            on_alert=enqueue_for_alerts(settings.actions),
        )

    def alerts(self, limit: int = 50) -> list[Alert]:
        """The newest alerts, newest first."""
        return list_alerts(self._project.store.engine, self._project.name, limit)

    def alert_counts(self) -> Counter[AlertKind]:
        """How many alerts the model has had, by kind."""
        return alert_counts(self._project.store.engine, self._project.name)

    def dashboard(self) -> DashboardData:
        """The dashboard's data (see :class:`DashboardData`)."""
        project = self._project
        engine, name, settings = project.store.engine, project.name, project.settings
        actions = project.actions.summary(dead_recent=10)
        versions = list_versions(engine, name)
        if not versions:
            return DashboardData(name, actions)
        champion = resolve(engine, name, settings.serve.alias)
        frame = load_predictions(engine, name, event_time=champion.signature.get("event_time"))
        freq = pd.Timedelta(milliseconds=parse_duration(settings.monitor.window))
        return DashboardData(
            model=name,
            actions=actions,
            champion=champion.version,
            versions=[_version(v) for v in versions],
            history=[_move(h) for h in alias_history(engine, name)],
            performance=windowed_performance(
                frame,
                task=champion.task,
                window=freq,
                threshold=champion.signature.get("threshold"),
                min_labels=settings.monitor.min_labels,
            ),
            drift=[
                {str(k): v for k, v in r.items()}
                for r in self._drift_over_time(frame, champion, freq).to_dict("records")
            ],
            alerts=[
                {"at": str(a.created_at)[:19], "kind": a.kind, "message": a.message} for a in self.alerts()
            ],
            cycles=self._cycles(),
            served_by=_served_by(frame, freq),
        )

    def _drift_over_time(
        self, frame: pd.DataFrame, version: ModelVersion, freq: pd.Timedelta
    ) -> pd.DataFrame:
        profile = reference_profile(self._project.store, version)
        if profile is None or frame.empty:
            return pd.DataFrame()
        min_rows = self._project.settings.monitor.min_rows
        rows = []
        for start, part in frame.groupby(pd.Grouper(key="time", freq=pd.tseries.frequencies.to_offset(freq))):
            if len(part) < min_rows:
                continue
            for result in compare(profile, current_inputs(part), min_rows=min_rows):
                rows.append(
                    {
                        "window_start": start,
                        "column": result.column,
                        "psi": result.psi,
                        "drifted": result.drifted,
                    }
                )
        return pd.DataFrame(rows)

    def _cycles(self) -> list[dict[str, Any]]:
        """The retraining loop's cycles and rollbacks, newest first."""
        return [
            {
                "at": str(e.started_at)[:19],
                "kind": e.kind,
                "status": e.status,
                "challenger": e.challenger_version,
                "why": "; ".join(e.reasons),
            }
            for e in list_events(self._project.store.engine, self._project.name, limit=200)
            if e.kind in (EventKind.CYCLE, EventKind.ROLLBACK)
        ]


def _version(v: ModelVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "aliases": list(v.aliases),
        "score": v.metrics.get("score"),
        "metric": v.metrics.get("metric"),
        "created_at": str(v.created_at)[:19],
    }


def _move(h: Any) -> dict[str, Any]:
    change = asdict(h)
    return {
        "at": str(change["created_at"])[:19],
        "alias": change["alias"],
        "from": change["previous_version"],
        "to": change["version"],
        "actor": change["actor"],
        "reason": change["reason"],
    }


def _served_by(frame: pd.DataFrame, freq: pd.Timedelta) -> list[dict[str, Any]]:
    """Which version made most predictions in each window (performance over time, by version)."""
    if frame.empty:
        return []
    grouped = frame.groupby(pd.Grouper(key="time", freq=pd.tseries.frequencies.to_offset(freq)))[
        "model_version"
    ]
    return [
        {"window_start": str(start)[:19], "version": int(rows.mode().iloc[0])}
        for start, rows in grouped
        if len(rows)
    ]
