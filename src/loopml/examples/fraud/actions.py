"""The fraud demo's actions: cases to the example case-management receiver, card blocks to SQL.

:func:`run_fraud_actions` starts the example receiver (:mod:`loopml.examples.fraud.receiver`) on a
free port, points the project's ``cases`` webhook at it, delivers every due action of the outbox
(the cases, and whatever the other endpoints hold, such as the ``blocks`` SQL table), and stops the
receiver. The actions themselves were written by the API and batch scoring, in the same transactions
as the predictions, exactly as in production; only the receiver's address is the demo's.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from loopml.config import EndpointConfig, Settings
from loopml.errors import ConfigError
from loopml.examples.fraud.receiver import CaseReceiver, new_secret

if TYPE_CHECKING:
    from loopml.project import Project

__all__ = ["run_fraud_actions"]


def _pointed_at(settings: Settings, endpoint: str, url: str, secret: str) -> Settings:
    """The settings with ``endpoint`` posting to ``url``, signed with ``secret``."""
    options = {k: v for k, v in settings.actions.endpoints[endpoint].options.items() if k != "secret_env"}
    moved = EndpointConfig(kind="webhook", **{**options, "url": url, "secret": secret})
    endpoints = {**settings.actions.endpoints, endpoint: moved}
    return settings.model_copy(
        update={"actions": settings.actions.model_copy(update={"endpoints": endpoints})}
    )


def run_fraud_actions(project: Project, *, endpoint: str = "cases", timeout: float = 120.0) -> dict[str, Any]:
    """Deliver the outbox with the example case receiver listening; returns what happened.

    ``{"cases_received": n, "duplicates_dropped": d, "rejected": r, "delivered": ..., "pending": ...,
    "dead": ..., "by_endpoint": {...}, "receiver_db": path}``. The receiver's secret is the value of
    the endpoint's ``secret_env`` variable when set, else a fresh one for this run.
    """
    settings = project.settings
    config = settings.actions.endpoints.get(endpoint)
    if config is None or config.kind != "webhook":
        raise ConfigError(
            f"the fraud demo sends cases to a webhook endpoint named '{endpoint}' under actions.endpoints.",
            hint="See the actions: section of the fraud example's loopml.yaml.",
        )
    variable = config.options.get("secret_env")
    secret = (os.environ.get(str(variable)) if variable else None) or new_secret()
    db_path = settings.state_dir / "case_receiver.db"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with CaseReceiver(secret=secret, port=0, db_path=db_path) as receiver:
        pointed = project.with_settings(_pointed_at(settings, endpoint, receiver.url, secret))
        attempts = pointed.actions.dispatch(timeout=timeout)
        outcomes = receiver.outcomes()
        cases = len(receiver.cases())
    summary = project.actions.summary()
    return {
        "attempts": attempts,
        "cases_received": cases,
        "duplicates_dropped": outcomes["duplicate"],
        "rejected": outcomes["rejected"],
        "pending": summary.pending,
        "delivered": summary.delivered,
        "dead": summary.dead,
        "suppressed": summary.suppressed,
        "by_endpoint": summary.by_endpoint,
        "receiver_db": str(db_path),
    }
