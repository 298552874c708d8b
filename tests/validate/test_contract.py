"""Data contracts: inference, versioned YAML files, and enforcement with quarantine."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import ContractError
from loopml.validate import (
    ColumnSpec,
    DataContract,
    enforce,
    infer_contract,
    latest_contract,
    load_contract,
    save_contract,
    schema_changes,
)
from loopml.validate.contract import CATEGORY_CAP


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [10, 11, 12, 13],
            "amount": [1.5, 0.0, 2.0, 3.25],
            "delta": [-1.0, 2.0, 3.0, 4.0],
            "count": [1.0, 2.0, np.nan, 4.0],
            "whole": [1.0, 2.0, 3.0, 4.0],
            "flag": [True, False, True, False],
            "city": ["paris", "oslo", None, "paris"],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]),
            "y": [0, 1, 0, 1],
        }
    )


@pytest.fixture
def contract() -> DataContract:
    return infer_contract(_frame(), "tx", id_column="id", event_time="ts", target="y")


# -- inference ---------------------------------------------------------------------------------------


def test_inferred_types_nullability_ranges_and_categories(contract: DataContract) -> None:
    specs = {s.name: (s.dtype, s.nullable, s.min, s.max, s.categories, s.unique) for s in contract.columns}
    assert specs == {
        "id": ("int", False, None, None, None, True),  # an id has no range and is unique
        "amount": ("float", False, 0.0, 6.5, None, False),  # non-negative: min 0; max 3.25 + 3.25
        # whole floats are ints; negative: no min; rising with ts (like count and whole): no max
        "delta": ("int", False, None, None, None, False),
        "count": ("float", True, 0.0, None, None, False),  # a missing value keeps it float
        "whole": ("int", False, 0.0, None, None, False),
        "flag": ("bool", False, None, None, None, False),
        "city": ("string", True, None, None, ["oslo", "paris"], False),
        "ts": ("datetime", False, None, None, None, False),  # the event time: never a max
        "y": ("int", False, 0.0, 2.0, None, False),
    }
    assert contract.names == list(_frame().columns)
    assert (contract.name, contract.version) == ("tx", 1)
    assert (contract.id_column, contract.event_time, contract.target) == ("id", "ts", "y")
    assert contract.column("city").categories == ["oslo", "paris"]
    with pytest.raises(KeyError):
        contract.column("nope")


def test_categories_are_capped() -> None:
    few = pd.DataFrame({"c": [f"v{i}" for i in range(CATEGORY_CAP)]})
    many = pd.DataFrame({"c": [f"v{i}" for i in range(CATEGORY_CAP + 1)]})
    assert infer_contract(few, "f").column("c").categories == sorted(f"v{i}" for i in range(CATEGORY_CAP))
    assert infer_contract(many, "m").column("c").categories is None


def test_ids_are_unique_only_when_the_data_says_so() -> None:
    assert infer_contract(pd.DataFrame({"k": [1, 2, 3]}), "a", id_column="k").column("k").unique
    assert not infer_contract(pd.DataFrame({"k": [1, 1, 3]}), "a", id_column="k").column("k").unique
    assert not infer_contract(pd.DataFrame({"k": [1, 2, 3]}), "a").column("k").unique  # not the id
    string_id = infer_contract(pd.DataFrame({"k": ["a", "b"]}), "a", id_column="k").column("k")
    assert (string_id.unique, string_id.categories) == (True, None)  # ids are never categories


def test_all_null_numeric_column_has_no_range() -> None:
    spec = infer_contract(pd.DataFrame({"x": [np.nan, np.nan]}), "n").column("x")
    assert (spec.dtype, spec.nullable, spec.min) == ("float", True, None)


def test_contracts_are_frozen_and_strict(contract: DataContract) -> None:
    with pytest.raises(ValueError):
        contract.version = 2  # type: ignore[misc]
    with pytest.raises(ValueError):
        ColumnSpec(name="x", dtype="complex")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ColumnSpec(name="x", dtype="int", colour="red")  # type: ignore[call-arg]


# -- files --------------------------------------------------------------------------------------------


def test_save_and_load_round_trip(contract: DataContract, tmp_path: Path) -> None:
    path = save_contract(contract, tmp_path / "contracts")
    assert path == tmp_path / "contracts" / "tx.v1.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Data contract for 'tx'")  # a commented, human-editable file
    assert yaml.safe_load(text)["columns"][0] == {
        "name": "id",
        "dtype": "int",
        "nullable": False,
        "unique": True,
    }
    assert load_contract(path) == contract


def test_save_refuses_to_overwrite(contract: DataContract, tmp_path: Path) -> None:
    path = save_contract(contract, tmp_path)
    before = path.read_text(encoding="utf-8")
    with pytest.raises(ContractError, match=r"tx\.v1\.yaml already exists; contracts are versioned"):
        save_contract(contract.model_copy(update={"target": None}), tmp_path)
    assert path.read_text(encoding="utf-8") == before


def test_latest_contract_picks_the_highest_version_numerically(
    contract: DataContract, tmp_path: Path
) -> None:
    assert latest_contract(tmp_path, "tx") is None
    for version in (1, 2, 9, 10):
        save_contract(contract.model_copy(update={"version": version}), tmp_path)
    save_contract(contract.model_copy(update={"name": "tx2", "version": 99}), tmp_path)  # another name
    (tmp_path / "tx.vlatest.yaml").write_text("junk", encoding="utf-8")  # not a version file
    latest = latest_contract(tmp_path, "tx")
    assert latest is not None and latest.version == 10 and latest.name == "tx"


def test_invalid_contract_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.v1.yaml"
    bad.write_text("name: x\ncolumns:\n  - name: a\n    dtype: complex\n", encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_contract(bad)
    assert str(info.value).startswith(f"contract file {bad} is invalid: ")
    assert "\n" not in str(info.value)
    broken = tmp_path / "broken.v1.yaml"
    broken.write_text("name: [x\n", encoding="utf-8")
    with pytest.raises(ContractError, match="is invalid"):
        load_contract(broken)


# -- enforcement -------------------------------------------------------------------------------------


def _good_row(i: int) -> dict[str, object]:
    return {
        "id": 100 + i,
        "amount": 1.0,
        "delta": -5,
        "count": None,
        "whole": 2,
        "flag": "true",
        "city": "oslo",
        "ts": "2024-02-01 10:00",
        "y": 1,
    }


def test_enforce_quarantines_each_rule(contract: DataContract) -> None:
    rows = [_good_row(i) for i in range(9)]
    rows[1]["amount"] = "abc"  # type
    rows[2]["flag"] = "maybe"  # type (bool)
    rows[3]["ts"] = "not a date"  # type (datetime)
    rows[4]["whole"] = None  # not_null
    rows[5]["amount"] = -0.5  # range
    rows[6]["city"] = "rome"  # category
    rows[7]["id"] = 100  # duplicate_id: row 0 has it first
    frame = pd.DataFrame(rows)
    result = enforce(frame, contract)

    assert len(result.accepted) + len(result.quarantined) == len(frame) == result.rows_read
    assert result.accepted["id"].tolist() == [100, 108]
    quarantined = result.quarantined
    assert quarantined["_row"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert list(zip(quarantined["_rule"], quarantined["_column"], strict=True)) == [
        ("type", "amount"),
        ("type", "flag"),
        ("type", "ts"),
        ("not_null", "whole"),
        ("range", "amount"),
        ("category", "city"),
        ("duplicate_id", "id"),
    ]
    values = quarantined["_value"].tolist()
    assert values[:3] + values[4:] == ["abc", "maybe", "not a date", "-0.5", "rome", "100"]
    assert values[3] in {"nan", "None", "<NA>"}  # the missing value, however pandas spells it
    assert result.counts == {"type": 3, "not_null": 1, "range": 1, "category": 1, "duplicate_id": 1}
    # Quarantined rows keep their original values.
    assert quarantined.loc[quarantined["_rule"] == "category", "city"].tolist() == ["rome"]


def test_accepted_rows_are_coerced_to_the_contract_types(contract: DataContract) -> None:
    frame = pd.DataFrame([_good_row(i) for i in range(3)]).astype(str)  # everything arrives as text
    frame["count"] = [None, "2.5", "3"]
    result = enforce(frame, contract)
    assert result.quarantined.empty
    accepted = result.accepted
    assert accepted["id"].dtype == "int64" and accepted["whole"].dtype == "int64"
    assert accepted["amount"].dtype == "float64" and accepted["count"].dtype == "float64"
    assert accepted["flag"].dtype == bool and accepted["flag"].all()
    assert pd.api.types.is_datetime64_any_dtype(accepted["ts"])
    assert accepted["ts"].iloc[0] == pd.Timestamp("2024-02-01 10:00")
    assert math.isnan(accepted["count"].iloc[0]) and accepted["count"].iloc[1] == 2.5


def test_non_finite_numbers_are_type_failures(contract: DataContract) -> None:
    rows = [_good_row(i) for i in range(3)]
    rows[0]["amount"], rows[1]["amount"] = float("inf"), "-inf"
    result = enforce(pd.DataFrame(rows), contract)
    assert result.quarantined["_rule"].tolist() == ["type", "type"]
    assert len(result.accepted) == 1


def test_missing_column_is_a_breaking_change(contract: DataContract) -> None:
    frame = pd.DataFrame([_good_row(0)]).drop(columns=["amount", "city"])
    assert schema_changes(frame, contract).missing == ("amount", "city")
    with pytest.raises(ContractError) as info:
        enforce(frame, contract)
    assert info.value.message == "data breaks contract 'tx' v1: missing column(s) amount, city."
    assert info.value.hint is not None and "contract file" in info.value.hint


def test_added_columns_are_reported_not_kept(contract: DataContract) -> None:
    frame = pd.DataFrame([_good_row(0)]).assign(new_col=1)
    result = enforce(frame, contract)
    assert result.schema.added == ("new_col",)
    assert not result.schema.breaking
    assert list(result.accepted.columns) == contract.names


def test_empty_frame(contract: DataContract) -> None:
    result = enforce(pd.DataFrame(columns=contract.names), contract)
    assert (len(result.accepted), len(result.quarantined), result.counts) == (0, 0, {})


_VALUES = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["oslo", "paris", "x", "", "true", "1", "2024-01-01", "nan"]),
    st.booleans(),
)


@settings(max_examples=50, deadline=None)
@given(data=st.data(), n=st.integers(0, 12))
def test_every_row_is_accepted_or_quarantined(data: st.DataObject, n: int) -> None:
    contract = infer_contract(_frame(), "tx", id_column="id", event_time="ts", target="y")
    frame = pd.DataFrame(
        {name: data.draw(st.lists(_VALUES, min_size=n, max_size=n), label=name) for name in contract.names},
        dtype=object,
    )
    result = enforce(frame, contract)
    assert len(result.accepted) + len(result.quarantined) == n
    assert sum(result.counts.values()) == len(result.quarantined)
    assert set(result.quarantined["_rule"]) <= {"type", "not_null", "range", "category", "duplicate_id"}
    assert sorted(result.quarantined["_row"].tolist()) == result.quarantined["_row"].tolist()
    if len(result.accepted):
        assert result.accepted["id"].is_unique
        assert (result.accepted["amount"] >= 0).all()
        assert result.accepted["city"].dropna().isin(["oslo", "paris"]).all()
