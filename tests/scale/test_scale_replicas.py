"""Two real ``loopml serve`` processes on one PostgreSQL store both serve a promoted version within
2 seconds of the promotion, and never go back to the old one afterwards.

The promotion is a plain alias move in the store (what ``loopml models promote``, a retraining
cycle or another replica's admin route does); nothing tells the replicas about it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from scale_procs import start_api, stop, wait_ready

from loopml.examples import write_example
from loopml.project import Project
from loopml.registry import set_alias
from loopml.validate import load_snapshot

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PREDICT = "/v1/models/fraud/predict"


@pytest.fixture
def two_versions(tmp_path: Path, postgres_url: str) -> Project:
    """The fraud example on PostgreSQL with version 1 (champion) and version 2 (not promoted)."""
    directory = tmp_path / "proj"
    write_example("fraud", directory, days=15)
    config = yaml.safe_load((directory / "loopml.yaml").read_text(encoding="utf-8"))
    config["store"] = {"db_url": postgres_url}
    config.setdefault("train", {}).update(params={"n_estimators": 10}, bootstrap=0, report=False)
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    project = Project.open(directory, environ={})
    project.ingest()
    assert project.train().promoted
    assert not project.train().promoted
    return project


@pytest.fixture
def replicas(two_versions: Project, tmp_path: Path) -> Iterator[list[str]]:
    directory = two_versions.settings.project_dir
    started = [start_api(directory, tmp_path / f"api-{i}.log") for i in range(2)]
    try:
        for i, (process, url) in enumerate(started):
            wait_ready(process, url, tmp_path / f"api-{i}.log")
        yield [url for _, url in started]
    finally:
        stop(process for process, _ in started)


def _record(project: Project) -> dict[str, Any]:
    from loopml.examples._demo import jsonable_records

    _, frame = load_snapshot(project.store, project.name)
    model = project.models.load()
    return jsonable_records(frame.tail(1), [project.settings.id_column or "", *model.input_columns])[0]


def _version(client: httpx.Client, url: str, record: dict[str, Any]) -> int:
    response = client.post(f"{url}{PREDICT}", json=[record])
    assert response.status_code == 200, response.text
    return int(response.json()["model_version"])


def test_both_replicas_serve_a_promotion_within_2_seconds(two_versions: Project, replicas: list[str]) -> None:
    record = _record(two_versions)
    with httpx.Client(timeout=10) as client:
        assert [_version(client, url, record) for url in replicas] == [1, 1]
        set_alias(two_versions.store, "fraud", "champion", 2, reason="scale test")
        promoted = time.monotonic()
        seen: dict[str, float] = {}
        while len(seen) < len(replicas) and time.monotonic() - promoted < 10:
            for url in replicas:
                version = _version(client, url, record)
                if url in seen:
                    assert version == 2, f"{url} went back to version {version}"
                elif version == 2:
                    seen[url] = time.monotonic() - promoted
            time.sleep(0.02)
    assert set(seen) == set(replicas), f"not every replica moved within 10 s: {seen}"
    print(f"seconds from the promotion until each replica served version 2: {seen}")
    assert max(seen.values()) <= 2.0, seen
