"""``project.monitor``: drift, realized and estimated performance, alerts, and the dashboard's data."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from loopml.actions import enqueue_for_alerts, enqueue_for_predictions
from loopml.enums import AlertKind
from loopml.monitor import Alert, MonitorReport, alert_counts, list_alerts, run_monitor
from loopml.project.dashboard import AggregateCache, DashboardData, build_dashboard
from loopml.store import journal_dir, replay_journal

if TYPE_CHECKING:
    from loopml.project.core import Project

__all__ = ["DashboardData", "Monitor"]


class Monitor:
    """``project.monitor``: how the served model is doing."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._aggregates = AggregateCache(project)

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

    def dashboard(self, *, fresh: bool = False) -> DashboardData:
        """The dashboard's data (see :class:`DashboardData`): per-window figures from aggregates of
        the prediction log computed in SQL and cached; with ``fresh`` computed now, else computed
        now only while the log is small and refreshed in the background once it is large (see
        :mod:`loopml.project.dashboard`)."""
        return build_dashboard(self._project, self._aggregates, fresh=fresh)

    def refresh_aggregates(self) -> str:
        """Compute the dashboard's per-window aggregates now (what the page would start in the
        background) and keep them; returns when they were computed."""
        return self._aggregates.compute().computed_at
