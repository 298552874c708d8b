"""The routes take what they need through ``Depends``: a test swaps a piece with ``dependency_overrides``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from loopml.project import Project
from loopml.serve.deps import get_holder, get_serve_config
from loopml.serve.state import ModelHolder, Serving

PREDICT = "/v1/models/fraud/predict"
RECORD: dict[str, Any] = {
    "transaction_id": 6_999_999,
    "customer_id": 6_999_999,
    "terminal_id": 6_999_999,
    "tx_datetime": "2026-01-20T14:30:00",
    "tx_amount": 42.5,
}


class PinnedHolder(ModelHolder):
    """A fake holder: serves one version, whatever the alias says, and never re-reads the alias."""

    def __init__(self, project: Project, version: int) -> None:
        super().__init__(project.store, project.name, project.settings.serve.alias)
        self._current = Serving(project.models.load(version))

    @property
    def due(self) -> bool:
        return False


def test_an_overridden_holder_is_what_every_route_serves(
    two_version_dir: Path, copy_project: Callable[[Path], Project]
) -> None:
    project = copy_project(two_version_dir)  # version 1 is the champion; version 2 is registered only
    v2_score = float(project.models.load(2).predict_records([RECORD])[0])
    app = project.app()
    pinned = PinnedHolder(project, 2)
    app.dependency_overrides[get_holder] = lambda: pinned
    with TestClient(app) as client:
        body = client.post(PREDICT, json=RECORD).json()
        assert (body["model_version"], body["predictions"][0]["score"]) == (2, v2_score)
        assert client.get("/v2/models/fraud").json()["versions"] == ["2"]
        assert client.get("/health/ready").json()["model_version"] == 2
        info = 'loopml_model_info{alias="champion",model="fraud",version="2"} 1.0'
        assert info in client.get("/metrics").text
        app.dependency_overrides.clear()  # back to the app's own holder, which follows the alias
        assert client.post(PREDICT, json=RECORD).json()["model_version"] == 1
    assert project.models.alias("champion") == 1


def test_an_overridden_serve_config_sets_the_batch_limit(api_project: Project) -> None:
    app = api_project.app()
    small = api_project.settings.serve.model_copy(update={"max_batch": 2})
    app.dependency_overrides[get_serve_config] = lambda: small
    records = [{**RECORD, "transaction_id": 6_999_990 + i} for i in range(3)]
    with TestClient(app) as client:
        assert client.post(PREDICT, json=records[:2]).status_code == 200
        refused = client.post(PREDICT, json=records)
        assert refused.status_code == 413, refused.text
        assert "batch of 3 records is over the limit of 2" in refused.json()["error"]["message"]
