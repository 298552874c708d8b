"""Each cleaning and contract rule, on small real frames, through the same checker ingest uses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.config import CleaningConfig, ContractConfig
from loopml.errors import ConfigError
from loopml.validate import ChunkChecker, DataContract, apply_rules, enforce, infer_contract
from loopml.validate.cleaning import trim


def _retailish() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "invoice": ["536365", "C536379", " 536366 ", "536367", "536367", "A563185"],
            "code": ["85123A", "D", "71053", "84406B", "84406B", "B"],
            "qty": [6, -1, 8, 0, 0, 1],
            "price": [2.55, 27.5, 3.39, 2.75, 2.75, -11062.06],
            "customer": [17850.0, np.nan, 13047.0, np.nan, np.nan, np.nan],
            "country": ["United Kingdom", "France", "United Kingdom", "EIRE", "EIRE", "United Kingdom"],
        }
    )


def _check(frame: pd.DataFrame, contract: DataContract, **cleaning: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    result = enforce(frame, contract, CleaningConfig.model_validate(cleaning))
    assert len(result.accepted) + len(result.quarantined) == len(frame)
    return result.accepted, result.quarantined


def _contract(frame: pd.DataFrame, **rules: Any) -> DataContract:
    config = ContractConfig.model_validate({"columns": rules})
    return apply_rules(infer_contract(trim(frame), "r"), config, CleaningConfig())


def test_trim_strips_text_and_blank_becomes_missing() -> None:
    frame = pd.DataFrame({"s": [" a ", "   ", None, "b"], "n": [1, 2, 3, 4]})
    got = trim(frame)
    assert got["s"].tolist()[0] == "a" and pd.isna(got["s"].iloc[1]) and got["s"].iloc[3] == "b"
    mixed = pd.Series([" x ", 3, None], dtype=object)
    assert trim(pd.DataFrame({"m": mixed}))["m"].tolist()[:2] == ["x", 3]


@pytest.mark.parametrize(
    ("op", "value", "quarantined_rows"),
    [
        ("startswith", "C", [1]),
        ("endswith", "5", [0, 5]),
        ("matches", r"^A\d+", [5]),
        ("not_matches", r"^\d{6}$", [1, 5]),
        ("eq", "536367", [3, 4]),
        ("in", ["536365", "A563185"], [0, 5]),
        ("not_in", ["536365"], [1, 2, 3, 4, 5]),
    ],
)
def test_filters_on_text(op: str, value: Any, quarantined_rows: list[int]) -> None:
    frame = _retailish()
    filt = {"rule": "f", "column": "invoice", "op": op, "value": value}
    _, bad = _check(frame, _contract(frame), filters=[filt])
    assert bad.loc[bad["_rule"] == "f", "_row"].tolist() == quarantined_rows


@pytest.mark.parametrize(
    ("op", "value", "rows"),
    [("lt", 1, [1, 3, 4]), ("le", 0, [1, 3, 4]), ("gt", 6, [2]), ("ge", 6, [0, 2]), ("ne", 0, [0, 1, 2, 5])],
)
def test_filters_on_numbers(op: str, value: int, rows: list[int]) -> None:
    frame = _retailish()
    _, bad = _check(
        frame, _contract(frame), filters=[{"rule": "q", "column": "qty", "op": op, "value": value}]
    )
    assert bad.loc[bad["_rule"] == "q", "_row"].tolist() == rows


def test_null_filters_and_unknown_filter_column() -> None:
    frame = _retailish()
    contract = _contract(frame)
    _, bad = _check(frame, contract, filters=[{"rule": "guest", "column": "customer", "op": "is_null"}])
    assert bad["_row"].tolist() == [1, 3, 4, 5]
    with pytest.raises(ConfigError, match=r"filter 'x' uses column 'custmer'.*did you mean 'customer'"):
        _check(frame, contract, filters=[{"rule": "x", "column": "custmer", "op": "is_null"}])


def test_first_rule_wins_and_the_offending_value_is_kept() -> None:
    frame = _retailish()
    contract = _contract(frame, qty={"min": 1}, price={"min": 0.01})
    good, bad = _check(
        frame,
        contract,
        filters=[{"rule": "cancellation", "column": "invoice", "op": "startswith", "value": "C"}],
    )
    by_row = {r["_row"]: (r["_rule"], r["_column"], r["_value"]) for r in bad.to_dict("records")}
    assert by_row[1] == ("cancellation", "invoice", "C536379")  # also negative qty: the filter came first
    assert by_row[3] == ("range", "qty", "0")
    assert by_row[5] == ("range", "price", "-11062.06")
    assert bad.loc[bad["_row"] == 1, "qty"].tolist() == ["-1"]  # the original values, as text
    assert good["invoice"].tolist() == ["536365", "536366"]  # trimmed


def test_missing_policies() -> None:
    frame = _retailish()
    contract = infer_contract(trim(frame), "r")  # customer is nullable as inferred
    keep = apply_rules(
        contract, ContractConfig(), CleaningConfig.model_validate({"missing": {"customer": "keep"}})
    )
    assert _check(frame, keep)[1].empty
    strict_cfg = CleaningConfig.model_validate({"missing": {"customer": "quarantine"}})
    strict = apply_rules(contract, ContractConfig(), strict_cfg)
    good, bad = _check(frame, strict, missing={"customer": "quarantine"})
    assert set(bad["_rule"]) == {"not_null"} and len(good) == 2
    good, bad = _check(frame, strict, missing={"customer": {"fill": 0}})
    assert bad.empty and good["customer"].tolist() == [17850.0, 0.0, 13047.0, 0.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match=r"cleaning.missing.customer.fill' 'x' is not a float"):
        _check(frame, strict, missing={"customer": {"fill": "x"}})


def test_out_of_range_clip_and_unknown_category_keep() -> None:
    frame = pd.DataFrame({"x": [-5.0, 0.5, 20.0], "c": ["a", "b", "zzz"]})
    contract = DataContract.model_validate(
        {"name": "t", "columns": [
            {"name": "x", "dtype": "float", "min": 0, "max": 10},
            {"name": "c", "dtype": "string", "categories": ["a", "b"]},
        ]}
    )  # fmt: skip
    good, bad = _check(frame, contract)
    assert bad["_rule"].tolist() == ["range", "range", "category"][: len(bad)] and len(good) == 1
    good, bad = _check(frame, contract, out_of_range="clip", unknown_category="keep")
    assert bad.empty and good["x"].tolist() == [0.0, 0.5, 10.0] and good["c"].tolist() == ["a", "b", "zzz"]


def test_pattern_rule_and_non_whole_ints() -> None:
    frame = pd.DataFrame({"code": ["12345", "POST", "67890A"], "n": [1, 2, 3]})
    contract = _contract(frame, code={"pattern": r"\d{5}[A-Z]?"})
    _, bad = _check(frame, contract)
    assert bad[["_rule", "_value"]].values.tolist() == [["pattern", "POST"]]
    _, bad = _check(pd.DataFrame({"code": ["12345"], "n": [1.5]}), contract)
    assert bad["_rule"].tolist() == ["type"]  # 1.5 is not an int


def test_dedupe_rows_and_ids_across_chunks() -> None:
    frame = _retailish()
    contract = _contract(frame)
    checker = ChunkChecker(contract, CleaningConfig(dedupe="row"))
    first, second = checker.check(frame.iloc[:4]), checker.check(frame.iloc[3:])
    assert first.counts == {} and second.counts == {"duplicate_row": 2}  # row 3 again, and row 4 = row 3
    assert second.quarantined["_row"].tolist() == [4, 5]  # row numbers count on across chunks
    ids = infer_contract(pd.DataFrame({"k": [1, 2], "v": [1, 5]}), "t", id_column="k")  # v: max 10
    checker = ChunkChecker(
        apply_rules(ids, ContractConfig(), CleaningConfig(dedupe="id")), CleaningConfig(dedupe="id")
    )
    checker.check(pd.DataFrame({"k": [1, 2], "v": [1, 1]}))
    again = checker.check(pd.DataFrame({"k": [2, 3, 3], "v": [5, 5, 5]}))
    assert again.quarantined[["_rule", "_value"]].values.tolist() == [
        ["duplicate_id", "2"],
        ["duplicate_id", "3"],
    ]


def test_rules_naming_unknown_columns_are_config_errors() -> None:
    contract = infer_contract(_retailish(), "r")
    with pytest.raises(ConfigError, match=r"'contract.columns.qtty' names no column.*did you mean 'qty'"):
        apply_rules(
            contract, ContractConfig.model_validate({"columns": {"qtty": {"min": 1}}}), CleaningConfig()
        )
    with pytest.raises(ConfigError, match="needs an id_column"):
        apply_rules(contract, ContractConfig(), CleaningConfig(dedupe="id"))
    with pytest.raises(ConfigError, match="not a regular expression"):
        apply_rules(
            contract, ContractConfig.model_validate({"columns": {"code": {"pattern": "("}}}), CleaningConfig()
        )
