"""Ingest end to end on real files and a real store: chunks, watermarks, atomicity, schema changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.config import CleaningConfig, load_settings
from loopml.errors import ContractError, DataError, StoreError
from loopml.store import Store, open_store, tables
from loopml.validate import (
    ChunkChecker,
    DataContract,
    diff_versions,
    enforce,
    ingest,
    list_versions,
    load_quarantine,
    load_snapshot,
    watermark_state,
)
from loopml.validate.schema import accept_schema


def _orders(start: int, rows: int, **extra: Any) -> pd.DataFrame:
    ids = list(range(start, start + rows))
    frame = pd.DataFrame(
        {
            "order_id": ids,
            "ts": pd.date_range("2024-01-01", periods=rows, freq="h") + pd.Timedelta(hours=start),
            "amount": [i % 7 + 0.5 for i in ids],
            "city": [f"c{i % 3}" for i in ids],
        }
    )
    return frame.assign(**extra)


def _project(tmp_path: Path, **overrides: Any) -> tuple[Any, Store]:
    config: dict[str, Any] = {
        "name": "orders",
        "source": {"kind": "parquet", "path": "data", "chunk_rows": 7},
        "target": "amount",
        "id_column": "order_id",
        "event_time": "ts",
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    settings_ = load_settings(tmp_path, environ={})
    return settings_, open_store(settings_.db_url, settings_.artifacts_url)


def _snapshot_of_store(store: Store, root: Path) -> dict[str, Any]:
    """Everything an ingest may write: every table's rows, every artifact file, every contract file."""
    with store.engine.connect() as conn:
        rows = {t.name: conn.execute(sa.select(t)).all() for t in tables.metadata.sorted_tables}
    files = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "loopml.db" not in p.name and p.parts[-2] != "data"
    )
    return {"rows": rows, "files": files}


def test_chunked_ingest_equals_one_chunk_and_records_everything(tmp_path: Path) -> None:
    settings_, store = _project(tmp_path)
    frame = _orders(0, 30)
    frame.to_parquet(tmp_path / "data" / "a.parquet")
    result = ingest(settings_, store)
    assert (result.rows_read, result.accepted + result.quarantined) == (30, 30)
    dataset, rows = load_snapshot(store, "orders")
    assert dataset.rows == result.accepted == len(rows)
    one = enforce(frame, result.contract)
    pd.testing.assert_frame_equal(rows, one.accepted, check_dtype=False)
    assert result.contract_created and (tmp_path / "contracts" / "orders.v1.yaml").is_file()


def test_watermark_reads_only_new_rows_and_restarts_are_idempotent(tmp_path: Path) -> None:
    settings_, store = _project(tmp_path, source={"watermark": "ts"})
    _orders(0, 20).to_parquet(tmp_path / "data" / "day1.parquet")
    first = ingest(settings_, store)
    assert (first.rows_read, first.dataset.version) == (20, 1)
    again = ingest(settings_, store)
    assert (again.rows_read, again.new_version, again.dataset.version) == (0, False, 1)
    _orders(20, 15).to_parquet(tmp_path / "data" / "day2.parquet")
    second = ingest(settings_, store)
    assert (second.rows_read, second.accepted, second.dataset.version) == (15, 15, 2)
    assert second.dataset.rows == 35  # the previous version's rows plus the new ones
    _, rows = load_snapshot(store, "orders")
    assert rows["order_id"].tolist() == list(range(35))
    state = watermark_state(store, "orders")
    assert state is not None and state["value"] == pd.Timestamp(rows["ts"].max()).isoformat()
    diff = diff_versions(store, "orders", 1, 2, id_column="order_id")
    assert (diff["rows_added"], diff["rows_removed"], diff["matched_by"]) == (15, 0, ["order_id"])


def _corrupt_second_file(tmp_path: Path) -> None:
    _orders(100, 10).to_parquet(tmp_path / "data" / "day2.parquet")
    (tmp_path / "data" / "day3.parquet").write_bytes(b"PAR1 this is not parquet at all")


def test_a_failure_mid_read_leaves_the_store_exactly_as_before(tmp_path: Path) -> None:
    settings_, store = _project(tmp_path, source={"watermark": "ts"})
    _orders(0, 20).to_parquet(tmp_path / "data" / "day1.parquet")
    ingest(settings_, store)
    before = _snapshot_of_store(store, tmp_path)
    _corrupt_second_file(tmp_path)
    with pytest.raises(DataError, match=r"day3\.parquet"):
        ingest(settings_, store)
    assert _snapshot_of_store(store, tmp_path) == before


def test_a_failure_in_the_final_transaction_undoes_the_artifacts(tmp_path: Path) -> None:
    settings_, store = _project(tmp_path, source={"watermark": "ts"})
    frame = _orders(0, 20)
    frame.loc[2, "city"] = None  # one quarantined row: a quarantine artifact is written too
    frame.to_parquet(tmp_path / "data" / "day1.parquet")
    before = _snapshot_of_store(store, tmp_path)
    with store.engine.begin() as conn:  # a real failure inside the database, after the snapshot row
        trigger = (
            "CREATE TRIGGER fail BEFORE INSERT ON quarantine_snapshots BEGIN SELECT RAISE(ABORT, 'x'); END"
        )
        conn.execute(sa.text(trigger))
    with pytest.raises(StoreError, match=r"could not record data set 'orders'.*: x"):
        ingest(settings_, store)
    assert (
        _snapshot_of_store(store, tmp_path) == before
    )  # no version, no quarantine, no contract, no watermark
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER fail"))
    assert ingest(settings_, store).dataset.version == 1


def test_missing_column_and_type_change_are_refused_until_accepted(tmp_path: Path) -> None:
    settings_, store = _project(tmp_path)
    _orders(0, 10).to_parquet(tmp_path / "data" / "a.parquet")
    ingest(settings_, store)
    _orders(0, 10).drop(columns=["city"]).assign(amount="n/a", channel="web").to_parquet(
        tmp_path / "data" / "a.parquet"
    )
    before = _snapshot_of_store(store, tmp_path)
    with pytest.raises(ContractError) as info:
        ingest(settings_, store)
    assert "missing column(s) city" in str(info.value) and "loopml data accept-schema" in str(info.value)
    assert _snapshot_of_store(store, tmp_path) == before
    contract, change = accept_schema(settings_, store)
    assert (contract.version, change.added, change.missing) == (2, ("channel",), ("city",))
    assert change.type_changed == (("amount", "float", "string"),)
    result = ingest(settings_, store)
    assert (result.contract.version, result.accepted) == (2, 10)


def test_type_change_alone_is_reported_and_refused(tmp_path: Path) -> None:
    settings_, store = _project(tmp_path)
    _orders(0, 10).to_parquet(tmp_path / "data" / "a.parquet")
    ingest(settings_, store)
    _orders(0, 10).assign(amount=[f"x{i}" for i in range(10)], extra=1).to_parquet(
        tmp_path / "data" / "a.parquet"
    )
    with pytest.raises(
        ContractError, match=r"column amount changed type float -> string; new column\(s\) extra"
    ):
        ingest(settings_, store)


def test_quarantined_rows_can_be_fixed_and_ingested_again(tmp_path: Path) -> None:
    settings_, store = _project(tmp_path, cleaning={"missing": {"city": "quarantine"}})
    frame = _orders(0, 10)
    ingest_frame = frame.assign(city=frame["city"].where(frame.index % 4 != 1, None))
    ingest_frame.to_parquet(tmp_path / "data" / "a.parquet")
    first = ingest(settings_, store)
    assert first.quarantine_counts == {"not_null": 3}
    bad = load_quarantine(store, first.dataset)
    assert bad["_column"].tolist() == ["city"] * 3 and bad["_value"].tolist() == ["<NA>"] * 3
    fixed = bad.drop(columns=["_row", "_rule", "_column", "_value"]).assign(city="c0")
    fixed.to_csv(tmp_path / "fixed.csv", index=False)
    second = ingest(settings_, store, input_path=tmp_path / "fixed.csv")
    assert (second.rows_read, second.accepted, second.dataset.rows) == (3, 3, 10)
    assert [v.version for v in list_versions(store, "orders")] == [2, 1]
    assert second.dataset.source["appended_to"] == 1


messy_value = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "a", " b ", "c", "1", "2.5", "x y", "2024-01-01", "true"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(messy_value, messy_value, messy_value), min_size=0, max_size=30),
    st.sampled_from(["none", "row", "id"]),
)
def test_accepted_plus_quarantined_is_rows_read_and_accepted_rows_obey(
    rows: list[tuple[Any, Any, Any]], dedupe: str
) -> None:
    frame = pd.DataFrame(rows, columns=["k", "x", "s"], dtype=object)
    contract = DataContract.model_validate(
        {"name": "p", "id_column": "k", "columns": [
            {"name": "k", "dtype": "int", "unique": True},
            {"name": "x", "dtype": "float", "nullable": True, "min": 0, "max": 3},
            {"name": "s", "dtype": "string", "categories": ["a", "b", "c"], "pattern": "[a-c]"},
        ]}
    )  # fmt: skip
    cleaning = CleaningConfig(dedupe=dedupe)  # type: ignore[arg-type]
    checker = ChunkChecker(contract, cleaning)
    half = len(frame) // 2
    results = [checker.check(frame.iloc[:half]), checker.check(frame.iloc[half:])]
    accepted = pd.concat([r.accepted for r in results], ignore_index=True)
    quarantined = pd.concat([r.quarantined for r in results], ignore_index=True)
    assert len(accepted) + len(quarantined) == len(frame)
    assert sorted(quarantined["_row"].tolist()) == sorted(set(quarantined["_row"].tolist()))
    if len(accepted):
        assert accepted["k"].is_unique and accepted["k"].notna().all()
        x = accepted["x"].dropna()
        assert ((x >= 0) & (x <= 3)).all()
        assert accepted["s"].isin(["a", "b", "c"]).all()
        if dedupe == "row":
            assert not accepted.duplicated().any()
        again = enforce(accepted, contract)  # nothing accepted fails the contract on a second look
        assert again.quarantined.empty
