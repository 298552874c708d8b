"""``project.worker``: the long-running loop of ``loopml worker`` (and of ``loopml up``).

Every ``retrain.interval_s`` seconds: replay the journals of killed API processes and apply the
retention policy, then one retraining step per model (monitor, watch the last promotion, the
policy and maybe a cycle); meanwhile a thread delivers the action outbox. Safe to stop, or kill, at
any point: a promotion is one transaction, so a cycle is either not promoted or fully promoted; the
next run resumes an interrupted cycle that had a challenger and abandons one that had not. One cycle
per model runs at a time however many workers share the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from loopml._process import configure_process
from loopml.actions import enqueue_for_predictions, run_dispatcher
from loopml.errors import BusyError
from loopml.store import tend_prediction_log

if TYPE_CHECKING:
    from loopml.project.core import Project
    from loopml.project.retrain import Tick

__all__ = ["Worker", "WorkerEvent"]

EventName = Literal["started", "upkeep", "tick", "busy", "failed", "upkeep_failed", "stopped"]


@dataclass(frozen=True)
class WorkerEvent:
    """Something the worker did or met, for its log: ``tick`` (a model's step, in ``tick``),
    ``upkeep`` (journal replay and pruning counts, in ``details``), ``busy`` (another worker holds a
    model's cycle), ``failed`` / ``upkeep_failed`` (an error, in ``message``; the worker goes on),
    ``started`` and ``stopped``."""

    name: EventName
    model: str
    message: str = ""
    tick: Tick | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event as ``loopml worker --json`` prints it (one object per line)."""
        return {
            "event": self.name,
            "model": self.model,
            "message": self.message,
            "details": self.details,
            "tick": self.tick.to_dict() if self.tick else None,
        }


class Worker:
    """``project.worker``: the retraining loop, the watch, action delivery and log upkeep."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        once: bool = False,
        on_event: Callable[[WorkerEvent], None] | None = None,
    ) -> None:
        """Loop until ``stop`` is set (or one pass, with ``once``; the outbox is then delivered once
        instead of by a thread). ``on_event`` hears of every step; a failing step never stops the
        loop, nor disturbs serving."""
        configure_process()
        project = self._project
        stop = stop or threading.Event()
        report = on_event or (lambda event: None)
        report(
            WorkerEvent("started", project.name, details={"interval_s": project.settings.retrain.interval_s})
        )
        actions = None if once else self._actions_thread(stop)
        while not stop.is_set():
            self.upkeep(report)
            for each in (project, *project.companions):  # companions: the maintenance failure model
                self._tick(each, report)
            if once:
                if project.settings.actions.endpoints:
                    project.actions.dispatch()
                break
            stop.wait(project.settings.retrain.interval_s)
        if actions is not None:
            actions.join(30)
        report(WorkerEvent("stopped", project.name))

    def upkeep(self, report: Callable[[WorkerEvent], None] | None = None) -> dict[str, int]:
        """Replay journals of killed API processes, then apply ``store.retention`` (to the outbox
        too); a failure is reported, never raised. Returns the counts."""
        project = self._project
        report = report or (lambda event: None)
        try:
            done = tend_prediction_log(
                project.settings,
                project.store.engine,
                on_write=enqueue_for_predictions(project.settings.actions),
            )
        except Exception as exc:
            report(WorkerEvent("upkeep_failed", project.name, f"{type(exc).__name__}: {exc}"))
            return {}
        if done["replayed"] or done["pruned"] or done["pruned_actions"]:
            report(WorkerEvent("upkeep", project.name, details=done))
        return done

    @staticmethod
    def _tick(project: Project, report: Callable[[WorkerEvent], None]) -> None:
        """One model's step; a failure is reported, never raised."""
        try:
            report(WorkerEvent("tick", project.name, tick=project.retrain.tick()))
        except BusyError as exc:  # another worker holds this model's cycle lease
            report(WorkerEvent("busy", project.name, str(exc)))
        except Exception as exc:  # a failing cycle never stops the worker
            report(WorkerEvent("failed", project.name, f"{type(exc).__name__}: {exc}"))

    def _actions_thread(self, stop: threading.Event) -> threading.Thread | None:
        """The outbox dispatcher (``actions:`` in loopml.yaml), delivering beside the loop."""
        project = self._project
        if not project.settings.actions.endpoints:
            return None
        args = (project.settings, project.store.engine, stop)
        thread = threading.Thread(target=run_dispatcher, args=args, name="loopml-actions", daemon=True)
        thread.start()
        return thread
