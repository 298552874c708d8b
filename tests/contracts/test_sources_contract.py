"""One suite over every registered source plugin: round trip, bad input, incremental idempotence,
the schema read without the rows (what ``loopml check`` compares the project file with).

Each plugin needs a maker here that stores a frame where that kind of source reads it; a plugin
registered without one fails ``test_every_registered_source_has_a_maker``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from loopml import _plugins
from loopml.config import load_settings
from loopml.errors import DataError
from loopml.sources import SchemaSource, Source, read_all, source_columns, source_from_config
from loopml.store import open_store
from loopml.validate import ingest, load_snapshot

Maker = Callable[[Path, pd.DataFrame, int], dict[str, Any]]  # -> the `source:` section of loopml.yaml


def _file_maker(kind: str) -> Maker:
    def make(root: Path, frame: pd.DataFrame, part: int) -> dict[str, Any]:
        folder = root / "data"
        folder.mkdir(exist_ok=True)
        file = folder / f"part-{part:03d}.{kind}"
        frame.to_csv(file, index=False) if kind == "csv" else frame.to_parquet(file, index=False)
        return {"kind": kind, "path": f"data/*.{kind}"}

    return make


def _sql_maker(root: Path, frame: pd.DataFrame, part: int) -> dict[str, Any]:
    engine = sa.create_engine(f"sqlite:///{root / 'shop.db'}")
    frame.to_sql("events", engine, index=False, if_exists="append")
    engine.dispose()
    return {"kind": "sql", "url": "sqlite:///shop.db", "table": "events"}


MAKERS: dict[str, Maker] = {"csv": _file_maker("csv"), "parquet": _file_maker("parquet"), "sql": _sql_maker}
BAD: dict[str, dict[str, Any]] = {
    "csv": {"kind": "csv", "path": "nowhere/*.csv"},
    "parquet": {"kind": "parquet", "path": "nowhere.parquet"},
    "sql": {"kind": "sql", "url": "sqlite:///shop.db", "table": "no_such_table"},
}
KINDS = sorted(_plugins.available("sources"))


def _events(start: int, rows: int) -> pd.DataFrame:
    ids = list(range(start, start + rows))
    return pd.DataFrame(
        {"event_id": ids, "seq": ids, "value": [i * 0.25 for i in ids], "tag": [f"t{i % 4}" for i in ids]}
    )


def _project(root: Path, source: dict[str, Any]) -> tuple[Any, Any]:
    config = {"name": "events", "source": {**source, "watermark": "seq", "chunk_rows": 5}, "target": "value",
              "id_column": "event_id"}  # fmt: skip
    (root / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    settings = load_settings(root, environ={})
    return settings, open_store(settings.db_url, settings.artifacts_url)


def test_every_registered_source_has_a_maker() -> None:
    assert set(KINDS) <= set(MAKERS), f"add a maker for {set(KINDS) - set(MAKERS)} to this suite"


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(kind: str, tmp_path: Path) -> None:
    frame = _events(0, 12)
    config = MAKERS[kind](tmp_path, frame, 0)
    settings, _ = _project(tmp_path, config)
    source = source_from_config(settings.source, tmp_path)
    assert isinstance(source, Source) and source.describe()["kind"] == kind
    batches = list(source.iter_batches(5))
    assert [len(b) for b in batches] == [5, 5, 2]
    got = pd.concat(batches, ignore_index=True).sort_values("event_id", ignore_index=True)
    pd.testing.assert_frame_equal(got, frame, check_dtype=False)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_a_one_line_data_error_naming_the_source(kind: str, tmp_path: Path) -> None:
    MAKERS[kind](tmp_path, _events(0, 3), 0)
    settings, _ = _project(tmp_path, BAD[kind])
    with pytest.raises(DataError) as info:
        read_all(source_from_config(settings.source, tmp_path))
    message = str(info.value)
    assert "\n" not in message and "loopml.yaml" in message
    assert ("nowhere" in message) if kind != "sql" else ("no_such_table" in message)


@pytest.mark.parametrize("kind", KINDS)
def test_incremental_ingest_is_idempotent_and_reads_each_row_once(kind: str, tmp_path: Path) -> None:
    settings, store = _project(tmp_path, MAKERS[kind](tmp_path, _events(0, 12), 0))
    assert ingest(settings, store).rows_read == 12
    repeat = ingest(settings, store)
    assert (repeat.rows_read, repeat.new_version) == (0, False)
    MAKERS[kind](tmp_path, _events(12, 8), 1)
    assert ingest(settings, store).rows_read == 8
    assert ingest(settings, store).rows_read == 0
    dataset, rows = load_snapshot(store, "events")
    assert dataset.version == 2 and sorted(rows["event_id"]) == list(range(20))


@pytest.mark.parametrize("kind", KINDS)
def test_column_names_without_reading_the_rows(kind: str, tmp_path: Path) -> None:
    MAKERS[kind](tmp_path, _events(0, 12), 0)
    settings, _ = _project(tmp_path, MAKERS[kind](tmp_path, _events(12, 3), 1))
    source = source_from_config(settings.source, tmp_path)
    assert isinstance(source, SchemaSource)
    assert source.column_names() == source_columns(source) == ["event_id", "seq", "value", "tag"]


@pytest.mark.parametrize("kind", KINDS)
def test_column_names_of_a_bad_source_is_a_one_line_data_error(kind: str, tmp_path: Path) -> None:
    MAKERS[kind](tmp_path, _events(0, 3), 0)
    settings, _ = _project(tmp_path, BAD[kind])
    with pytest.raises(DataError) as info:
        source_columns(source_from_config(settings.source, tmp_path))
    assert "\n" not in str(info.value) and "loopml.yaml" in str(info.value)


class _RowsOnly:
    """A third-party source without ``column_names``: its columns come from a first batch."""

    def describe(self) -> dict[str, Any]:
        return {"kind": "rows-only"}

    def iter_batches(self, batch_rows: int = 100_000) -> Any:
        yield _events(0, 5).iloc[:batch_rows]


def test_source_columns_falls_back_to_a_first_batch() -> None:
    source = _RowsOnly()
    assert isinstance(source, Source) and not isinstance(source, SchemaSource)
    assert source_columns(source) == ["event_id", "seq", "value", "tag"]
