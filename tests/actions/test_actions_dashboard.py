"""The dashboard's delivery-status panel, from a real outbox: counts, dead letters, a disabled endpoint."""

from __future__ import annotations

from pathlib import Path

from actions_support import log_predictions, make_settings, prediction_rows

from loopml.actions import dispatch_once
from loopml.dashboard.actions_panel import actions_panel
from loopml.dashboard.page import _environment
from loopml.project import Project
from loopml.store import ArtifactStore, Store


def actions_data(project: Project) -> dict:
    return project.actions.summary(dead_recent=10).to_dict()


def panel(data: dict) -> str:
    """The panel as the dashboard renders it (its autoescaped template)."""
    return _environment().get_template("actions.html.j2").render(actions=actions_panel(data))


def test_panel_shows_counts_dead_letters_and_disabled_endpoints(engine, receiver, tmp_path: Path) -> None:
    store = Store(engine, ArtifactStore(str(tmp_path / "artifacts")))
    settings = make_settings(receiver.url, tmp_path, concurrency=1)
    project = Project(settings, store)
    assert "No actions yet" in panel(actions_data(project))
    log_predictions(engine, settings, prediction_rows(3))
    receiver.fail_next(1, 422)
    receiver.fail_next(1, 410)
    dispatch_once(settings, engine)
    data = actions_data(project)
    assert (data["dead"], data["pending"], data["delivered"]) == (2, 1, 0)
    page = panel(data)
    assert '<table id="actions-status">' in page
    assert "<td>cases</td><td>1</td><td>0</td><td>2</td><td>0</td>" in page
    assert "is disabled (HTTP 410)" in page and "loopml actions replay --endpoint cases" in page
    assert page.count("<tr>") == 3 + 3  # status: header, endpoint, all; dead: header + 2
    assert "HTTP 422" in page
