"""Retention of the prediction log, and the log's upkeep: replay crash journals, then prune.

``store.retention`` in ``loopml.yaml`` says how long predictions are kept (``predictions: 90d``)
and, optionally, how long those that received feedback are kept (``labelled: 365d``). A
prediction's feedback is deleted with it: every reader (performance windows, retraining's label
count, the dashboard) reaches a label through its prediction, so an orphan label serves nothing.
Deletion runs in batches, each its own short transaction, so a large prune never holds a long
lock on the log that the API is writing to.

``store.retention.outbox`` does the same for the actions outbox: finished actions (delivered, dead,
suppressed) older than it are deleted; pending ones never are, nor any that a rule's dedupe window
or rate limit still counts (the cutoff is never later than the longest of those windows allows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, delete, exists, select

from loopml._durations import duration
from loopml.config import RetentionConfig, Settings
from loopml.enums import ActionStatus
from loopml.store.engine import utcnow
from loopml.store.predictions import OnWrite, replay_journal
from loopml.store.tables import action_outbox, feedback, predictions

__all__ = [
    "PruneResult",
    "journal_dir",
    "prune_outbox",
    "prune_predictions",
    "retention_cutoffs",
    "tend_prediction_log",
]

FINISHED = (
    ActionStatus.DELIVERED,
    ActionStatus.DEAD,
    ActionStatus.SUPPRESSED,
)  # outbox states a dispatcher never touches again


@dataclass(frozen=True)
class PruneResult:
    """What a prune deleted, and the cutoffs it used (None: that class of rows is kept)."""

    predictions: int
    feedback: int
    cutoff: datetime | None
    labelled_cutoff: datetime | None


def retention_cutoffs(
    policy: RetentionConfig, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``(cutoff, labelled_cutoff)``: predictions made before these times are deleted."""
    if policy.predictions is None:
        return None, None
    now = now or utcnow()
    cutoff = now - duration(policy.predictions)
    labelled = now - duration(policy.labelled) if policy.labelled else cutoff
    return cutoff, min(cutoff, labelled)


def _prune_model(
    engine: Engine, model: str, cutoff: datetime, labelled: bool | None, batch: int
) -> tuple[int, int]:
    """Delete ``model``'s predictions before ``cutoff`` (only unlabelled / labelled ones when asked)."""
    p, f = predictions, feedback
    has_label = exists().where(f.c.prediction_id == p.c.id)
    query = select(p.c.id).where(p.c.model_name == model, p.c.created_at < cutoff)
    if labelled is not None:
        query = query.where(has_label if labelled else ~has_label)
    query = query.order_by(p.c.created_at).limit(batch)
    deleted = labels = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(query).scalars())
            if not ids:
                return deleted, labels
            labels += conn.execute(delete(f).where(f.c.prediction_id.in_(ids))).rowcount or 0
            deleted += conn.execute(delete(p).where(p.c.id.in_(ids))).rowcount or 0


def prune_predictions(
    engine: Engine, policy: RetentionConfig, *, now: datetime | None = None, batch: int = 5000
) -> PruneResult:
    """Delete the predictions (and their feedback) that ``policy`` no longer keeps, in batches.

    Only what is older than the policy goes: a prediction made at or after the cutoff is kept.
    """
    cutoff, labelled_cutoff = retention_cutoffs(policy, now)
    if cutoff is None or labelled_cutoff is None:
        return PruneResult(0, 0, None, None)
    with engine.connect() as conn:
        models = list(conn.execute(select(predictions.c.model_name).distinct()).scalars())
    deleted = labels = 0
    for model in models:
        if labelled_cutoff == cutoff:
            counts = [_prune_model(engine, model, cutoff, None, batch)]
        else:
            counts = [
                _prune_model(engine, model, cutoff, False, batch),
                _prune_model(engine, model, labelled_cutoff, True, batch),
            ]
        deleted += sum(c[0] for c in counts)
        labels += sum(c[1] for c in counts)
    return PruneResult(deleted, labels, cutoff, labelled_cutoff)


def prune_outbox(
    engine: Engine,
    older_than: str,
    *,
    keep: timedelta = timedelta(0),
    now: datetime | None = None,
    batch: int = 5000,
) -> int:
    """Delete finished actions created before ``now - max(older_than, keep)``; return how many.

    ``keep`` is the longest window the rules still look back over (dedupe, rate limit): pruning
    never changes whether a later action is suppressed. Pending actions are never deleted.
    """
    cutoff = (now or utcnow()) - max(duration(older_than), keep)
    o = action_outbox
    finished = select(o.c.id).where(o.c.status.in_(FINISHED), o.c.created_at < cutoff)
    query = finished.order_by(o.c.id).limit(batch)
    deleted = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(query).scalars())
            if not ids:
                return deleted
            deleted += conn.execute(delete(o).where(o.c.id.in_(ids))).rowcount or 0


def _longest_rule_window(settings: Settings) -> timedelta:
    windows = [timedelta(0)]
    for rule in settings.actions.rules:
        if rule.dedupe is not None:
            windows.append(duration(rule.dedupe.window))
        if rule.rate_limit is not None:
            windows.append(duration(rule.rate_limit.per))
    return max(windows)


def journal_dir(settings: Settings) -> Path:
    """Where the API journals prediction records before acknowledging them (``serve.journal_dir``)."""
    configured = settings.serve.journal_dir
    if configured is None:
        return settings.state_dir / "journal"
    path = Path(configured)
    return path if path.is_absolute() else settings.project_dir / path


def tend_prediction_log(
    settings: Settings, engine: Engine, *, on_write: OnWrite | None = None, now: datetime | None = None
) -> dict[str, int]:
    """The log's upkeep, for ``loopml worker`` ticks and before monitoring reads the log.

    Replays the journals that killed API processes left behind (so their acknowledged
    predictions are counted), then applies ``store.retention`` (to the outbox too, where
    ``outbox`` is set). Returns ``{"replayed", "pruned", "pruned_feedback", "pruned_actions"}``.
    """
    replayed = replay_journal(engine, journal_dir(settings), on_write=on_write)
    policy = settings.store.retention
    pruned = prune_predictions(engine, policy, now=now)
    actions = 0
    if policy.outbox is not None:
        actions = prune_outbox(engine, policy.outbox, keep=_longest_rule_window(settings), now=now)
    return {
        "replayed": replayed,
        "pruned": pruned.predictions,
        "pruned_feedback": pruned.feedback,
        "pruned_actions": actions,
    }
