"""The compiled single-record path equals the scikit-learn pipeline exactly, and so does its history."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from loopml.features import EntityHistory, WindowSpec, event_millis
from loopml.project import Project
from loopml.scoring import LoadedModel
from loopml.scoring.compiled import compile_pipeline

BASE = dt.datetime(2026, 1, 1)


def random_records(
    rng: np.random.Generator, n: int, first_id: int, entities: int = 40
) -> list[dict[str, Any]]:
    """Rows over few cards and terminals (so histories collide), at random times and amounts."""
    return [
        {
            "transaction_id": first_id + i,
            "customer_id": int(rng.integers(0, entities)),
            "terminal_id": int(rng.integers(0, entities)),
            "tx_datetime": BASE
            + dt.timedelta(
                seconds=int(rng.integers(0, 40 * 86400)), microseconds=int(rng.integers(0, 10**6))
            ),
            "tx_amount": float(np.round(rng.random() * rng.choice([10, 300, 5000]), 2)),
        }
        for i in range(n)
    ]


def test_the_fraud_pipeline_compiles(api_project: Project) -> None:
    model = api_project.models.load()
    assert model.compiled is not None
    assert len(model.compiled.columns) == model.pipeline[-1].n_features_in_
    # the example compares each card's last hour, day and week (and the amount) with its month
    assert sum(c.kind == "ratio" for c in model.compiled.columns) == 10


def test_compiled_path_equals_the_pipeline_on_many_random_rows(api_project: Project) -> None:
    """Two copies of the model score the same stream: one record by record through the compiled path,
    one through pandas and the scikit-learn pipeline. Scores and histories must agree exactly."""
    fast, reference = api_project.models.load(), api_project.models.load()
    rng = np.random.default_rng(7)
    compared = 0
    for step in range(150):
        records = random_records(rng, int(rng.integers(1, 4)), 40_000_000 + 10 * step)
        coerced = reference.coerce(pd.DataFrame.from_records(records))
        reference.observe(coerced)  # events join the history first, as in training and batch
        features = reference.features(coerced)
        expected = reference.score_generic(features)
        assert np.array_equal(reference.score(features), expected)  # compiled frame path
        got = fast.predict_records(records)  # compiled row path, light history update
        assert got.tolist() == expected.tolist(), (step, records)
        compared += len(records)
    assert compared > 250


def test_large_and_unusual_inputs_fall_back_to_pandas_with_the_same_scores(api_project: Project) -> None:
    model = api_project.models.load()
    rng = np.random.default_rng(3)
    records = random_records(rng, 300, 41_000_000)
    frame = pd.DataFrame.from_records(records)
    expected = model.score_generic(model.features(model.coerce(frame)))
    assert model.predict_records(records, observe=False).tolist() == expected.tolist()
    as_text = [{**r, "tx_datetime": r["tx_datetime"].isoformat()} for r in records[:5]]  # parsed by pandas
    assert model.predict_records(as_text, observe=False).tolist() == expected[:5].tolist()
    missing_id = [{k: v for k, v in r.items() if k != "transaction_id"} for r in records[:3]]
    assert model.predict_records(missing_id, observe=False).tolist() == expected[:3].tolist()


def test_other_pipelines_are_not_compiled(api_project: Project) -> None:
    model = api_project.models.load()
    frame = pd.DataFrame({"tx_amount": [1.0, 2.0, 3.0, 4.0]})
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(
        frame, [0, 1, 0, 1]
    )
    assert compile_pipeline(pipeline, model.contract, []) is None
    generic = LoadedModel(model.version, pipeline=model.pipeline, state=model.state)
    assert generic.compiled is not None


@pytest.mark.parametrize("label_delay", [None, "1d"])
def test_light_window_path_equals_the_frame_path(label_delay: str | None) -> None:
    specs = [
        WindowSpec("card", "amount", ("count", "sum", "mean", "max"), ("1h", "1d", "7d"), label_delay),
        WindowSpec("card", None, ("count",), ("1d",)),
    ]
    rng = np.random.default_rng(11)
    n = 3000
    times = pd.Series(
        pd.to_datetime("2026-01-01") + pd.to_timedelta(rng.integers(0, 30 * 86400, n), unit="s")
    )
    events = pd.DataFrame(
        {
            "id": np.arange(n, dtype=float),
            "t": times,
            "card": rng.integers(0, 20, n).astype(float),
            "amount": np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 100),
        }
    )
    frame_side, light_side = (EntityHistory(specs, "t", "id") for _ in range(2))
    frame_side.extend(events.iloc[: n // 2])
    light_side.extend(events.iloc[: n // 2])
    for start in range(n // 2, n, 7):  # then a few events at a time, each side by its own path
        chunk = events.iloc[start : start + 7]
        rows = chunk.to_dict("records")
        millis = event_millis([r["t"].to_pydatetime() for r in rows])
        light = light_side.feature_rows(millis, {"card": [r["card"] for r in rows]})
        expected = frame_side.features(chunk)
        for name in frame_side.names:
            assert np.array_equal(light[name], expected[name].to_numpy(), equal_nan=True), name
        frame_side.extend(chunk)
        assert light_side.extend_rows(millis, rows) == len(rows)
        assert light_side.extend_rows(millis, rows) == 0  # ids already known are skipped
    final = pd.DataFrame({"t": times, "card": events["card"]})
    pd.testing.assert_frame_equal(light_side.features(final), frame_side.features(final), check_exact=True)
