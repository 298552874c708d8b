"""The columnar pass gives exactly the checker's result: same rows quarantined with the same rule,
column and value, same typed rows, same ids remembered, chunk by chunk and through a whole ingest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from loopml.config import CleaningConfig, load_settings
from loopml.sources import CsvSource
from loopml.store import open_store
from loopml.validate import ChunkChecker, ingest, load_quarantine
from loopml.validate.columnar import ColumnarChecker, ColumnarResult, supported
from loopml.validate.contract import ColumnSpec, DataContract, save_contract
from loopml.validate.plan import contracts_dir
from loopml.validate.seen import Seen
from loopml.validate.snapshots import arrow_schema

CONTRACT = DataContract(
    name="orders",
    id_column="id",
    event_time="ts",
    columns=[
        ColumnSpec(name="id", dtype="int", unique=True),
        ColumnSpec(name="ts", dtype="datetime"),
        ColumnSpec(name="amount", dtype="float", min=0, max=500),
        ColumnSpec(name="qty", dtype="int", nullable=True, min=0, max=40),
        ColumnSpec(name="country", dtype="string", categories=["de", "fr", "uk"]),
        ColumnSpec(name="sku", dtype="string", nullable=True),
    ],
)

# Every kind of trouble the checks know, spread so that some chunks are clean and typed, others not.
MESSY = {
    3: {"amount": "-4.5"},  # range
    5: {"amount": "inf"},  # type (not finite)
    8: {"qty": "2.5"},  # type (not whole)
    9: {"qty": ""},  # missing, allowed
    13: {"country": "atlantis"},  # category
    14: {"country": "  fr  "},  # trimmed, accepted
    15: {"country": "   "},  # missing after trimming: not_null
    17: {"ts": "2024-02-30 10:00:00"},  # type (no such day)
    18: {"ts": "2024-01-03T10:00:00+02:00"},  # an offset: the pandas parser, converted to UTC
    19: {"ts": "1500-01-01"},  # outside the years a timestamp holds
    22: {"id": "7"},  # duplicate_id
    23: {"sku": "NA"},  # missing, allowed
    26: {"amount": "NaN", "qty": "99"},  # not_null first (amount comes before qty)
    30: {"id": ""},  # not_null on the id
    33: {"amount": "twelve"},  # a chunk pandas reads as text: the checker's own path
    41: {"qty": "41", "country": "xx"},  # range on qty before category
}


def _csv(path: Path, rows: int = 48) -> Path:
    lines = ["id,ts,amount,qty,country,sku,note"]
    for i in range(rows):
        ts = f"2024-01-{1 + i % 28:02d} {i % 24:02d}:00:00"
        row = {"id": str(i), "ts": ts, "amount": f"{i * 3.25:.2f}", "qty": str(i % 9),
               "country": ["de", "fr", "uk"][i % 3], "sku": f"sku-{i}", "note": "x"}  # fmt: skip
        row.update(MESSY.get(i, {}))
        lines.append(",".join(row.values()))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _as_table(accepted: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(accepted, pa.Table):
        return accepted
    return pa.Table.from_pandas(accepted, schema=arrow_schema(CONTRACT), preserve_index=False, safe=False)


@pytest.mark.parametrize("chunk", [4, 8, 48])
def test_columnar_gives_the_checkers_result_chunk_by_chunk(tmp_path: Path, chunk: int) -> None:
    frames = list(CsvSource(str(_csv(tmp_path / "orders.csv"))).iter_batches(chunk))
    plain, both = ChunkChecker(CONTRACT), ChunkChecker(CONTRACT)
    columnar, used = ColumnarChecker(both), 0
    for frame in frames:
        want = plain.check(frame)
        got = columnar.check(frame)
        used += got is not None
        got = got or both.check(frame)
        assert _as_table(got.accepted).equals(_as_table(want.accepted))
        pd.testing.assert_frame_equal(got.quarantined, want.quarantined)
        assert got.counts == want.counts
    assert used == len(frames) - 1  # only the chunk with "twelve" (amount read as text) goes round
    assert plain.stats == both.stats and plain.offset == both.offset


def test_the_messy_rows_get_each_rule_once(tmp_path: Path) -> None:
    frame = next(CsvSource(str(_csv(tmp_path / "orders.csv"))).iter_batches(32))  # no "twelve" yet
    result = ColumnarChecker(ChunkChecker(CONTRACT)).check(frame)
    assert isinstance(result, ColumnarResult)
    out = result.quarantined
    rules = dict(zip(out["_row"], zip(out["_rule"], out["_column"], strict=True), strict=True))
    assert rules == {
        3: ("range", "amount"), 5: ("type", "amount"), 8: ("type", "qty"), 13: ("category", "country"),
        15: ("not_null", "country"), 17: ("type", "ts"), 19: ("type", "ts"), 22: ("duplicate_id", "id"),
        26: ("not_null", "amount"), 30: ("not_null", "id"),
    }  # fmt: skip
    assert result.quarantined.set_index("_row").loc[3, "_value"] == "-4.5"
    accepted = result.accepted.to_pandas().set_index("id")
    assert accepted.loc[14, "country"] == "fr" and pd.isna(accepted.loc[9, "qty"])
    assert accepted.loc[18, "ts"] == pd.Timestamp("2024-01-03 08:00:00")


def test_what_the_columnar_pass_leaves_to_the_checker() -> None:
    assert supported(CONTRACT, CleaningConfig())
    assert not supported(CONTRACT, CleaningConfig(dedupe="row"))
    assert not supported(CONTRACT, CleaningConfig(out_of_range="clip"))
    flag = CONTRACT.model_copy(update={"columns": [*CONTRACT.columns, ColumnSpec(name="ok", dtype="bool")]})
    assert not supported(flag, CleaningConfig())
    row = {"id": [1], "ts": ["2024-01-01"], "amount": [object()], "qty": [1], "country": ["de"], "sku": ["a"]}
    mixed = pd.DataFrame(row).astype({"ts": "str", "country": "str", "sku": "str"})
    assert ColumnarChecker(ChunkChecker(CONTRACT)).check(mixed) is None
    assert ColumnarChecker(ChunkChecker(CONTRACT)).check(mixed.drop(columns="sku")) is None  # raises there


def _ingest(
    tmp_path: Path, name: str, csv: Path, patch: pytest.MonkeyPatch, columnar: bool, saved: bool
) -> Any:
    project = tmp_path / name
    project.mkdir()
    config = {"name": "orders", "target": "amount", "id_column": "id", "event_time": "ts",
              "source": {"kind": "csv", "path": str(csv), "chunk_rows": 8}}  # fmt: skip
    (project / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    if saved:
        save_contract(CONTRACT, contracts_dir(project))
    settings = load_settings(project, environ={})
    store = open_store(settings.db_url, settings.artifacts_url)
    with patch.context() as scope:
        if not columnar:
            scope.setattr(ColumnarChecker, "check", lambda self, frame: None)
        return store, ingest(settings, store)


@pytest.mark.parametrize("saved", [True, False], ids=["contract-in-place", "first-ingest"])
def test_a_whole_ingest_is_the_same_with_and_without_the_columnar_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saved: bool
) -> None:
    csv = _csv(tmp_path / "orders.csv", rows=200)
    if not saved:  # inference keeps "twelve", so amount would be text: no range or type failures then
        csv.write_text(csv.read_text(encoding="utf-8").replace("twelve", "12"), encoding="utf-8")
    fast_store, got = _ingest(tmp_path, "fast", csv, monkeypatch, columnar=True, saved=saved)
    slow_store, want = _ingest(tmp_path, "slow", csv, monkeypatch, columnar=False, saved=saved)
    assert got.contract == want.contract
    assert (got.rows_read, got.accepted, got.quarantined) == (want.rows_read, want.accepted, want.quarantined)
    assert got.quarantine_counts == want.quarantine_counts and got.quarantined > 0
    assert got.dataset.content_hash == want.dataset.content_hash
    with fast_store.artifacts.open(got.dataset.uri) as a, slow_store.artifacts.open(want.dataset.uri) as b:
        assert pq.read_table(a).equals(pq.read_table(b))
    pd.testing.assert_frame_equal(
        load_quarantine(fast_store, got.dataset), load_quarantine(slow_store, want.dataset)
    )
    if saved:
        assert set(got.quarantine_counts) == {"range", "type", "duplicate_id", "not_null", "category"}


@pytest.mark.parametrize("unit", ["s", "ns"])
def test_typed_sources_masked_numbers_and_times_give_the_checkers_result(unit: str) -> None:
    """Parquet and SQL sources hand over nullable Int64/Float64 and datetime64 of any unit."""
    contract = DataContract(
        name="t",
        columns=[
            ColumnSpec(name="a", dtype="int", min=0, max=10),
            ColumnSpec(name="b", dtype="float", nullable=True),
            ColumnSpec(name="ts", dtype="datetime"),
        ],
    )
    times = ["2024-01-01", None, "2024-01-02", "2024-01-03", "1677-06-01" if unit == "s" else "2024-01-04"]
    frame = pd.DataFrame(
        {
            "a": pd.array([1, None, 11, 3, 4], dtype="Int64"),
            "b": pd.array([1.5, None, 2.0, float("inf"), 1.0], dtype="Float64"),
            "ts": pd.to_datetime(times).astype(f"datetime64[{unit}]"),
        }
    )
    want = ChunkChecker(contract).check(frame)
    got = ColumnarChecker(ChunkChecker(contract)).check(frame)
    assert isinstance(got, ColumnarResult) and got.counts == want.counts
    pd.testing.assert_frame_equal(got.quarantined, want.quarantined)
    expected = pa.Table.from_pandas(
        want.accepted, schema=arrow_schema(contract), preserve_index=False, safe=False
    )
    assert got.accepted.equals(expected)
    assert got.counts == (
        {"not_null": 1, "range": 1, "type": 2} if unit == "s" else {"not_null": 1, "range": 1, "type": 1}
    )


def test_seen_finds_the_same_duplicates_as_a_set_whether_keys_grow_or_not() -> None:
    rng = np.random.default_rng(3)
    for chunks in ([np.arange(0, 50), np.arange(50, 90)], [rng.integers(0, 60, 40) for _ in range(5)]):
        seen, model = Seen(), set()
        for chunk in chunks:
            keys = chunk.astype(np.uint64)
            expected = []
            for key in keys.tolist():
                expected.append(key in model)
                model.add(key)
            assert seen.duplicates(keys).tolist() == expected
        assert len(seen) == len(model)
        assert seen.contains(np.array(sorted(model), dtype=np.uint64)).all()
