"""The dashboard's delivery-status panel: the action outbox per endpoint, dead letters, disabled endpoints."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["actions_panel"]

_COLUMNS = ("pending", "delivered", "dead", "suppressed")


def _cells(values: list[Any]) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values) + "</tr>"


def actions_panel(data: dict[str, Any]) -> str:
    """The panel's HTML (``<h2>Actions</h2>`` and its tables) from an action summary's dict
    (:meth:`loopml.project.ActionSummary.to_dict`, with the newest dead actions)."""
    if not data["total"]:
        return '<h2>Actions</h2><p class="muted">No actions yet (see actions: in loopml.yaml).</p>'
    head = "".join(f"<th>{c}</th>" for c in ("endpoint", *_COLUMNS))
    rows = "".join(
        _cells([name, *(counts[c] for c in _COLUMNS)]) for name, counts in data["by_endpoint"].items()
    )
    parts = [
        "<h2>Actions</h2>",
        f'<table id="actions-status"><tr>{head}</tr>{rows}'
        + _cells(["all", *(data[c] for c in _COLUMNS)])
        + "</table>",
    ]
    for item in data["disabled_endpoints"]:
        parts.append(
            f'<p class="alert">Endpoint <b>{html.escape(item["endpoint"])}</b> is disabled (HTTP 410): '
            f"{html.escape(str(item['reason']))}. Re-enable it with <code>loopml actions replay --endpoint "
            f"{html.escape(item['endpoint'])}</code>.</p>"
        )
    if data["dead_recent"]:
        dead_head = "".join(
            f"<th>{c}</th>" for c in ("id", "rule", "endpoint", "attempts", "last error", "created")
        )
        dead_rows = "".join(
            _cells(
                [
                    a["id"],
                    a["rule"],
                    a["endpoint"],
                    a["attempts"],
                    (a["last_error"] or "")[:120],
                    str(a["created_at"])[:19],
                ]
            )
            for a in data["dead_recent"]
        )
        parts.append(
            f"<p>Dead actions (re-queue with <code>loopml actions replay</code>):</p>"
            f'<table id="actions-dead"><tr>{dead_head}</tr>{dead_rows}</table>'
        )
    return "".join(parts)
