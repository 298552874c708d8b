"""Every kind of label the issue found stored, sent to ``POST /v1/feedback`` of a multiclass and a
regression model (the binary model's are in test_input_safety.py): each is a 422 naming the
prediction id and nothing is stored, while a label the model can take is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from contract_support import WEAR, machines_project
from loopml.store import tables

# The labels the issue saw stored for a real prediction id (a binary model takes ``true``).
ISSUE_LABELS: list[Any] = [{"a": 1}, "yes", 5, -1, None, [1], "NaN", 1e308, True]
RECORD = {
    "UDI": 91_001,
    "Product ID": "L91001",
    "Type": "L",
    "Air temperature [K]": 300.5,
    WEAR: 120,
    "maintained": False,
    "failure": 0,
    "when": "2024-01-20T10:00:00",
}
CASES = [
    # target "Type": classes H, L, M; every label of the issue is refused
    pytest.param("multiclass", "Type", ISSUE_LABELS, "L", id="multiclass"),
    # target "Tool wear [min]": a whole number in [0, 496] (its inferred contract); 5 is one
    pytest.param("regression", WEAR, [v for v in ISSUE_LABELS if v != 5], 5, id="regression"),
]


@pytest.mark.parametrize(("task", "target", "bad", "good"), CASES)
def test_every_bad_label_kind_is_422_and_nothing_is_stored(
    tmp_path: Path, task: str, target: str, bad: list[Any], good: Any
) -> None:
    project = machines_project(tmp_path / "proj", rows=600, task=task, target=target)
    record = {k: v for k, v in RECORD.items() if k != target}
    with TestClient(project.app()) as client:
        scored = client.post("/v1/models/machines/predict", json=record)
        assert scored.status_code == 200, scored.text
        prediction_id = scored.json()["predictions"][0]["prediction_id"]
        for label in bad:
            response = client.post("/v1/feedback", json=[{"prediction_id": prediction_id, "label": label}])
            assert response.status_code == 422, (label, response.text)
            message = response.json()["error"]["message"]
            assert f"prediction_id '{prediction_id}'" in message and "nothing was stored" in message, message
            assert f"(a {task} model's label)" in message, message
        refused = client.post("/v1/feedback", json=[{"prediction_id": prediction_id, "label": "yes"}])
        expected = "not one of the classes H, L, M" if task == "multiclass" else "text, not a number"
        assert expected in refused.json()["error"]["message"], refused.text
        with project.store.engine.connect() as conn:
            assert conn.execute(select(tables.feedback.c.label)).scalars().all() == []
        accepted = client.post("/v1/feedback", json=[{"prediction_id": prediction_id, "label": good}])
        assert accepted.status_code == 200 and accepted.json()["accepted"] == 1, accepted.text
    with project.store.engine.connect() as conn:
        assert conn.execute(select(tables.feedback.c.label)).scalars().all() == [good]
    project.store.engine.dispose()
