"""The dashboard's delivery-status panel: the action outbox per endpoint, dead letters, disabled endpoints.

:func:`actions_panel` turns an action summary into rows for ``templates/actions.html.j2``, which
renders them with autoescaping (an endpoint name or an error message is always text).
"""

from __future__ import annotations

from typing import Any

__all__ = ["actions_panel"]

_COLUMNS = ("pending", "delivered", "dead", "suppressed")


def actions_panel(data: dict[str, Any]) -> dict[str, Any]:
    """The panel's context from an action summary's dict (:meth:`loopml.project.ActionSummary.to_dict`,
    with the newest dead actions): ``total``, ``status`` (header and rows per endpoint, then all),
    ``disabled`` endpoints with their reason, and the newest ``dead`` actions."""
    rows = [[name, *(counts[c] for c in _COLUMNS)] for name, counts in data["by_endpoint"].items()]
    return {
        "total": data["total"],
        "status": {"header": ["endpoint", *_COLUMNS], "rows": [*rows, ["all", *(data[c] for c in _COLUMNS)]]},
        "disabled": [
            {"endpoint": d["endpoint"], "reason": str(d["reason"])} for d in data["disabled_endpoints"]
        ],
        "dead": {
            "header": ["id", "rule", "endpoint", "attempts", "last error", "created"],
            "rows": [
                [
                    a["id"],
                    a["rule"],
                    a["endpoint"],
                    a["attempts"],
                    (a["last_error"] or "")[:120],
                    str(a["created_at"])[:19],
                ]
                for a in data["dead_recent"]
            ],
        },
    }
