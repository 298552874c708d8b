"""``project.retrain``: the retraining cycle (policy, challenger, gate, shadow, promotion), the watch
after a promotion, and the recorded events of both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.enums import EventKind
from loopml.retrain import CycleResult, Event, list_events, run_cycle, tick

if TYPE_CHECKING:
    from loopml.project.core import Project

__all__ = ["Retrain", "Rollback", "Tick"]


@dataclass(frozen=True)
class Rollback:
    """A promotion the watch undid: from which version to which, and why."""

    from_version: int
    to_version: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.from_version, "to": self.to_version, "reason": self.reason}


@dataclass(frozen=True)
class Tick:
    """One worker step for one model: the watch's rollback (if any) and the policy's cycle."""

    model: str
    rollback: Rollback | None
    cycle: CycleResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rollback": self.rollback.to_dict() if self.rollback else None,
            "cycle": self.cycle.to_dict(),
        }


class Retrain:
    """``project.retrain``: keeping the model current."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def run(self, *, force: bool = False, dry_run: bool = False) -> list[CycleResult]:
        """One retraining cycle for the project's model, then for each companion model, each judged
        on its own labels, triggers and holdout: the policy decides (``retrain:`` in loopml.yaml),
        or ``force`` runs it anyway; ``dry_run`` only explains. The first result is the project's."""
        return [
            run_cycle(p.settings, p.store, force=force, dry_run=dry_run)
            for p in (self._project, *self._project.companions)
        ]

    def tick(self) -> Tick:
        """One worker step for the project's model (not its companions: each is a project of its
        own, see :attr:`Project.companions`): monitor, watch the last promotion (roll it back on an
        alarm), then run the policy and maybe a cycle."""
        project = self._project
        rolled, cycle = tick(project.settings, project.store)
        undone = Rollback(rolled["from"], rolled["to"], rolled["reason"]) if rolled else None
        return Tick(project.name, undone, cycle)

    def events(self, kind: EventKind | None = None, limit: int = 100) -> list[Event]:
        """Recorded decisions, cycles and rollbacks (of one kind when given), newest first."""
        return list_events(self._project.store.engine, self._project.name, kind, limit)
