"""The top-k route on a ranking model trained from the shipped recommend example (December 2010)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from loopml.examples import write_example
from loopml.monitor.performance import load_predictions, windowed_performance
from loopml.project import Project
from loopml.serve import create_app

URL = "/v1/models/recommend/recommend"
# Two candidates and a forced choice: three fits instead of seven (the choice is tested in tests/tasks).
FAST = {"LOOPML_TRAIN__MODEL": "als", "LOOPML_RANKING__CANDIDATES": "[popularity, als]"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    directory: Path = tmp_path_factory.mktemp("recommend")
    write_example("recommend", directory, until=None, months=1)
    proj = Project.open(directory, environ=FAST)
    proj.ingest()
    outcome = proj.train()
    assert outcome.promoted and outcome.version.signature["task"] == "ranking"
    return proj


@pytest.fixture(scope="module")
def client(project: Project) -> Iterator[TestClient]:
    with TestClient(project.app()) as c:
        yield c


def _known_customer(project: Project) -> tuple[str, set[str]]:
    model = project.models.load().pipeline[-1]
    customer = max(model.users_, key=lambda u: len(model.history(u)))
    return customer, set(model.history(customer))


def test_known_customer_gets_new_items_only(client: TestClient, project: Project) -> None:
    customer, bought = _known_customer(project)
    response = client.post(URL, json={"customer": int(customer), "k": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["known"] and body["customer"] == customer and body["model_version"] == 1
    items = [i["item"] for i in body["items"]]
    assert len(items) == 7 and not set(items) & bought
    assert [i["rank"] for i in body["items"]] == list(range(1, 8))
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    excluded = client.post(URL, json={"customer": customer, "k": 7, "exclude": items[:2]}).json()
    assert not {i["item"] for i in excluded["items"]} & set(items[:2])


def test_unknown_customer_gets_the_country_best_sellers(client: TestClient) -> None:
    body = client.post(URL, json={"customer": "no-such-customer", "segment": "United Kingdom"}).json()
    assert not body["known"] and body["source"] == "popularity:United Kingdom" and len(body["items"]) == 10
    anywhere = client.post(URL, json={"customer": 1, "segment": "Atlantis", "k": 3}).json()
    assert anywhere["source"] == "popularity" and len(anywhere["items"]) == 3


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"k": 3}, "customer"),
        ({"customer": 1, "k": 0}, "k"),
        ({"customer": 1, "k": 101}, "k"),
        ({"customer": 1, "k": "ten"}, "k"),
        ({"customer": True}, "customer"),
        ({"customer": ""}, "customer"),
        ({"customer": 1, "exclude": "22423"}, "exclude"),
        ({"customer": 1, "time": "yesterday"}, "time"),
        ({"customer": 1, "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client: TestClient, payload: dict, field: str) -> None:
    response = client.post(URL, json=payload)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]


def test_unknown_model_is_404(client: TestClient) -> None:
    assert client.post("/v1/models/other/recommend", json={"customer": 1}).status_code == 404


def test_lists_are_logged_and_feedback_gives_hit_rate(client: TestClient, project: Project) -> None:
    ids = [
        client.post(URL, json={"customer": c, "time": f"2011-01-0{n + 1}T10:00:00"}).json()["prediction_id"]
        for n, c in enumerate(["no-one", "nobody", "none"])
    ]
    labels = [{"prediction_id": p, "label": y} for p, y in zip(ids, [0, 2, 1], strict=True)]
    assert client.post("/v1/feedback", json=labels).json()["accepted"] == 3
    frame = load_predictions(project.store.engine, "recommend", event_time="InvoiceDate")
    mine = frame[frame["prediction_id"].isin(ids)]
    assert mine["inputs"].map(lambda i: i["CustomerID"]).tolist() == ["no-one", "nobody", "none"]
    windows = windowed_performance(mine, task="ranking", window="30D", min_labels=1)
    assert windows[0]["realized"] == pytest.approx({"hit_rate": 2 / 3, "hits_per_list": 1.0})


def test_generic_predict_ranks_pairs(client: TestClient, project: Project) -> None:
    customer, bought = _known_customer(project)
    top = client.post(URL, json={"customer": customer, "k": 1}).json()["items"][0]["item"]
    rows = [
        {"CustomerID": float(customer), "StockCode": item, "Country": "United Kingdom"}
        for item in (top, sorted(bought)[0])
    ]
    response = client.post("/v1/models/recommend/predict", json=rows)
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert first["rank"] == 1 and second["rank"] is None  # already bought: never ranked
    batch = project.models.load().predict_frame(pd.DataFrame(rows), observe=False)
    assert batch[0] == 1 and np.isnan(batch[1])


def test_route_needs_the_predict_token_when_one_is_set(project: Project) -> None:
    token = secrets.token_urlsafe(32)
    settings = project.settings.model_copy(
        update={"serve": project.settings.serve.model_copy(update={"predict_token": token})}
    )
    with TestClient(create_app(settings, project.store)) as c:
        assert c.post(URL, json={"customer": 1}).status_code == 401
        ok = c.post(URL, json={"customer": 1}, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200


def test_retrain_compares_on_purchases_the_champion_never_saw(project: Project) -> None:
    """Runs last: January's lines arrive, a cycle ingests them, and the gate compares both models on
    the purchases made after everything the champion was trained on."""
    from loopml.examples.recommend import later_lines
    from loopml.retrain import run_cycle

    january: pd.DataFrame = later_lines("2011-01-01")  # type: ignore[assignment]
    january = january[january["InvoiceDate"] < pd.Timestamp("2011-01-15")]
    january.to_parquet(project.settings.project_dir / "data" / "lines" / "lines-0002.parquet", index=False)
    result = run_cycle(project.settings, project.store, force=True)
    assert result.ran and result.challenger_version == 2, result.to_dict()
    metrics = project.models.load(2).version.metrics
    champion = metrics["champion"]
    assert champion["version"] == 1 and 0 < champion["rows"] <= metrics["evaluation_rows"]
    assert champion["challenger_score"] is not None
    assert pd.Timestamp(metrics["trained_until"]) >= pd.Timestamp("2011-01-14")
    checks = {c["check"] for c in result.gate}
    assert {"beats_baseline", "beats_champion"} <= checks
