"""The inferred ``max`` of a number column, and the columns that get none because they grow with
time: the id, the event time, the watermark, and the columns that rise with the event time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from loopml.config import CleaningConfig, ContractConfig
from loopml.project import Project
from loopml.validate import ContractInferrer, apply_rules, enforce, infer_contract
from loopml.validate.bounds import TREND_SAMPLE_ROWS, upper_bound


def _sensor_log(rows: int, seed: int = 0) -> pd.DataFrame:
    """Readings every minute: a temperature in kelvin, a 0/1 flag, a signed offset, and four columns
    that grow with time (epoch seconds, a day number, a counter with ties, a noisy running total)."""
    rng = np.random.default_rng(seed)
    when = pd.date_range("2024-01-01", periods=rows, freq="min")
    return pd.DataFrame(
        {
            "reading_id": np.arange(rows),
            "at": when,
            "air_temperature_k": rng.uniform(295.3, 304.5, rows).round(1),
            "failed": rng.integers(0, 2, rows),
            "offset": rng.normal(0, 3, rows).round(2),
            "epoch_s": (when - pd.Timestamp(0)) // pd.Timedelta(1, "s"),
            "day": (when - when[0]).days,
            "cycles": np.arange(rows) // 7,
            "running_total": np.cumsum(rng.uniform(0, 10, rows)) + rng.normal(0, 5, rows),
        }
    )


def _maxima(frame: pd.DataFrame, **roles: str) -> dict[str, float | None]:
    contract = infer_contract(frame, "s", **roles)
    return {spec.name: spec.max for spec in contract.columns}


def test_the_maximum_is_the_observed_one_widened_and_5000_kelvin_is_out_of_contract() -> None:
    assert upper_bound(295.3, 304.5) == 609.0  # 304.5 + max(9.2, 304.5), three significant digits up
    assert upper_bound(0, 1) == 2.0 and upper_bound(-20, 35) == 90.0 and upper_bound(-9, -1) == 0.0
    assert upper_bound(0.001, 0.00123) == 0.00246
    frame = _sensor_log(2_000)
    contract = infer_contract(frame, "s", id_column="reading_id", event_time="at")
    assert contract.column("air_temperature_k").max == 609.0
    assert contract.column("failed").max == 2.0
    assert contract.column("offset").min is None and contract.column("offset").max is not None
    hot = frame.iloc[:3].assign(air_temperature_k=[300.0, 5000.0, 610.0])
    result = enforce(hot, contract)
    assert result.quarantined[["_rule", "_column", "_value"]].values.tolist() == [
        ["range", "air_temperature_k", "5000.0"],
        ["range", "air_temperature_k", "610.0"],
    ]


def test_columns_that_grow_with_the_event_time_get_no_maximum() -> None:
    maxima = _maxima(_sensor_log(3_000), id_column="reading_id", event_time="at")
    assert {name for name, bound in maxima.items() if bound is None} == {
        "reading_id", "at", "epoch_s", "day", "cycles", "running_total",
    }  # fmt: skip


def test_rising_is_judged_by_the_event_time_not_the_file_order() -> None:
    shuffled = _sensor_log(3_000).sample(frac=1.0, random_state=1).reset_index(drop=True)
    maxima = _maxima(shuffled, id_column="reading_id", event_time="at")
    assert maxima["epoch_s"] is None and maxima["cycles"] is None and maxima["air_temperature_k"] == 609.0
    as_text = shuffled.assign(at=shuffled["at"].astype(str))  # a CSV's ISO strings
    assert _maxima(as_text, event_time="at")["day"] is None


def test_without_an_event_time_only_identifiers_and_the_watermark_are_unbounded() -> None:
    frame = _sensor_log(500).drop(columns=["at"]).rename(columns={"reading_id": "seq"})
    maxima = _maxima(frame, id_column="seq")
    assert maxima["seq"] is None and maxima["epoch_s"] is not None  # nothing to judge rising by
    inferrer = ContractInferrer("s", unbounded=["epoch_s"])  # the watermark grows by definition
    inferrer.update(frame)
    assert inferrer.result().column("epoch_s").max is None and inferrer.result().column("seq").max == 998.0


def test_identifiers_get_no_maximum_by_name_or_as_entity_keys(tmp_path: Path) -> None:
    frame = pd.DataFrame({"CustomerID": [17850.0, 13047.0], "card_id": [1, 2], "engine": [1, 2],
                          "paid": [10.0, 20.0], "y": [0, 1]})  # fmt: skip
    assert _maxima(frame) == {"CustomerID": None, "card_id": None, "engine": 4.0, "paid": 40.0, "y": 2.0}
    frame.to_csv(tmp_path / "rows.csv", index=False)
    config = {"name": "s", "source": {"kind": "csv", "path": "rows.csv"}, "target": "y",
              "train": {"group_column": "engine"}}  # fmt: skip
    (tmp_path / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    contract = Project.open(tmp_path, environ={}).ingest().contract
    assert contract.column("engine").max is None and contract.column("paid").max == 40.0


def test_chunks_give_the_same_contract_as_one_frame() -> None:
    frame = _sensor_log(3 * TREND_SAMPLE_ROWS // 2)  # the trend sample thins itself once at least
    inferrer = ContractInferrer("s", id_column="reading_id", event_time="at")
    for start in range(0, len(frame), 7_000):
        inferrer.update(frame.iloc[start : start + 7_000])
    assert inferrer.result() == infer_contract(frame, "s", id_column="reading_id", event_time="at")
    assert len(pd.concat([t for t, _ in inferrer._trend.parts])) <= TREND_SAMPLE_ROWS  # type: ignore[union-attr]


def test_the_project_file_can_change_or_remove_an_inferred_maximum() -> None:
    contract = infer_contract(_sensor_log(200), "s", event_time="at")
    rules = ContractConfig.model_validate(
        {"columns": {"air_temperature_k": {"max": None}, "failed": {"max": 1}}}
    )
    ruled = apply_rules(contract, rules, CleaningConfig())
    assert ruled.column("air_temperature_k").max is None and ruled.column("failed").max == 1


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("values", [[np.inf, 1.0], [np.nan, np.nan]])
def test_no_maximum_from_infinite_or_missing_values(values: list[float]) -> None:
    assert infer_contract(pd.DataFrame({"x": values}), "s").column("x").max is None


@pytest.mark.parametrize(("task", "maximum"), [("binary", 1.0), ("multiclass", 2.0), ("regression", 4.0)])
def test_a_classification_target_is_bounded_by_its_classes(tmp_path: Path, task: str, maximum: float) -> None:
    """The labels of a classifier are its classes: a later row labelled one more than the largest
    class seen is quarantined (range, naming the target), not learnt as a new class; a regression
    target keeps the widened bound."""
    labels = {"binary": [0, 1], "multiclass": [0, 1, 2], "regression": [0, 1, 2]}[task]
    frame = pd.DataFrame({"k": range(60), "x": np.linspace(1, 9, 60), "y": (labels * 60)[:60]})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    config = {"name": "s", "task": task, "source": {"kind": "csv", "path": "rows.csv"}, "target": "y",
              "id_column": "k"}  # fmt: skip
    (tmp_path / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    project = Project.open(tmp_path, environ={})
    assert project.ingest().contract.column("y").max == maximum
    later = pd.DataFrame({"k": [100, 101], "x": [2.0, 3.0], "y": [labels[-1], labels[-1] + 1]})
    later.to_csv(tmp_path / "later.csv", index=False)
    result = project.data.ingest(tmp_path / "later.csv")
    assert result.quarantine_counts == ({"range": 1} if task != "regression" else {})
