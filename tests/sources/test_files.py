"""CSV and Parquet sources: a file, a folder, a glob; chunked reads; helpful errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from loopml.errors import ConfigError, DataError
from loopml.sources import CsvSource, ParquetSource, Source, open_source, read_all


def _part(start: int, rows: int) -> pd.DataFrame:
    ids = range(start, start + rows)
    return pd.DataFrame(
        {"id": list(ids), "amount": [i * 1.5 for i in ids], "city": [f"c{i % 3}" for i in ids]}
    )


@pytest.fixture
def parts() -> list[pd.DataFrame]:
    return [_part(0, 7), _part(7, 5), _part(12, 4)]


def _write(frame: pd.DataFrame, path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _source(kind: str, path: Path | str) -> Source:
    return CsvSource(str(path)) if kind == "csv" else ParquetSource(str(path))


KINDS = ["csv", "parquet"]


@pytest.mark.parametrize("kind", KINDS)
def test_single_file(tmp_path: Path, kind: str, parts: list[pd.DataFrame]) -> None:
    file = tmp_path / f"data.{kind}"
    _write(parts[0], file, kind)
    source = _source(kind, file)
    assert isinstance(source, Source)
    pdt.assert_frame_equal(read_all(source), parts[0])
    assert source.describe()["kind"] == kind
    assert source.describe()["path"] == str(file)


@pytest.mark.parametrize("kind", KINDS)
def test_folder_reads_every_matching_file_in_path_order(
    tmp_path: Path, kind: str, parts: list[pd.DataFrame]
) -> None:
    folder = tmp_path / "data"
    _write(parts[0], folder / f"a.{kind}", kind)
    _write(parts[1], folder / "sub" / f"b.{kind}", kind)  # folders are read recursively
    _write(parts[2], folder / f"c.{kind}", kind)
    (folder / "notes.txt").write_text("ignored", encoding="utf-8")
    expected = pd.concat([parts[0], parts[2], parts[1]], ignore_index=True)  # a, c, sub/b
    pdt.assert_frame_equal(read_all(_source(kind, folder)), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_glob(tmp_path: Path, kind: str, parts: list[pd.DataFrame]) -> None:
    for i, part in enumerate(parts):
        _write(part, tmp_path / f"day-{i}.{kind}", kind)
    _write(_part(100, 2), tmp_path / f"other.{kind}", kind)
    got = read_all(_source(kind, tmp_path / f"day-*.{kind}"))
    pdt.assert_frame_equal(got, pd.concat(parts, ignore_index=True))


@pytest.mark.parametrize("kind", KINDS)
def test_iter_batches_is_chunked(tmp_path: Path, kind: str, parts: list[pd.DataFrame]) -> None:
    _write(parts[0], tmp_path / f"a.{kind}", kind)  # 7 rows
    _write(parts[1], tmp_path / f"b.{kind}", kind)  # 5 rows
    batches = list(_source(kind, tmp_path).iter_batches(batch_rows=3))
    # Batches never span files: 7 -> 3, 3, 1 and 5 -> 3, 2.
    assert [len(b) for b in batches] == [3, 3, 1, 3, 2]
    pdt.assert_frame_equal(pd.concat(batches, ignore_index=True), pd.concat(parts[:2], ignore_index=True))
    pdt.assert_frame_equal(read_all(_source(kind, tmp_path), batch_rows=2), read_all(_source(kind, tmp_path)))


def test_csv_options_go_to_the_reader(tmp_path: Path) -> None:
    file = tmp_path / "semi.csv"
    file.write_text("id;amount\n1;2,5\n2;3,0\n", encoding="utf-8")
    source = CsvSource(str(file), sep=";", decimal=",")
    assert source.describe() == {"kind": "csv", "path": str(file), "options": {"sep": ";", "decimal": ","}}
    pdt.assert_frame_equal(read_all(source), pd.DataFrame({"id": [1, 2], "amount": [2.5, 3.0]}))


def test_parquet_column_selection(tmp_path: Path, parts: list[pd.DataFrame]) -> None:
    _write(parts[0], tmp_path / "a.parquet", "parquet")
    source = ParquetSource(str(tmp_path / "a.parquet"), columns=["city", "id"])
    assert list(read_all(source).columns) == ["city", "id"]
    assert source.describe()["columns"] == ["city", "id"]


@pytest.mark.parametrize("kind", KINDS)
def test_missing_path_is_a_data_error_with_a_hint(tmp_path: Path, kind: str) -> None:
    for missing in (tmp_path / f"nope.{kind}", tmp_path / f"*.{kind}", tmp_path):  # file, glob, empty folder
        with pytest.raises(DataError) as info:
            list(_source(kind, missing).iter_batches())
        assert info.value.message == f"source path '{missing}' matches no .{kind} file."
        assert info.value.hint is not None and "source.path" in info.value.hint
        assert "\n" not in str(info.value)


def test_unparseable_csv_is_a_one_line_data_error(tmp_path: Path) -> None:
    file = tmp_path / "bad.csv"
    file.write_text("a,b\n1,2\n1,2,3,4\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_all(CsvSource(str(file)))
    assert str(info.value).startswith(f"cannot parse CSV file '{file}': ")
    assert "\n" not in str(info.value)


def test_corrupt_parquet_is_a_one_line_data_error(tmp_path: Path) -> None:
    file = tmp_path / "bad.parquet"
    file.write_bytes(b"not parquet at all" * 10)
    with pytest.raises(DataError) as info:
        read_all(ParquetSource(str(file)))
    assert str(info.value).startswith(f"cannot read Parquet file '{file}': ")
    assert "\n" not in str(info.value)


def test_open_source_resolves_relative_paths_against_the_project(
    tmp_path: Path, parts: list[pd.DataFrame]
) -> None:
    _write(parts[0], tmp_path / "data" / "t.parquet", "parquet")
    relative = open_source("parquet", "data/t.parquet", base_dir=tmp_path)
    assert isinstance(relative, ParquetSource) and relative.path == str(tmp_path / "data" / "t.parquet")
    pdt.assert_frame_equal(read_all(relative), parts[0])
    absolute = open_source("csv", str(tmp_path / "x.csv"), {"sep": ";"}, base_dir=Path("/elsewhere"))
    assert isinstance(absolute, CsvSource)
    assert (absolute.path, absolute.options) == (str(tmp_path / "x.csv"), {"sep": ";"})
    assert open_source("csv", "s3://bucket/x.csv", base_dir=tmp_path).path == "s3://bucket/x.csv"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown source kind 'parqet'; did you mean 'parquet'"):
        open_source("parqet", "x", base_dir=tmp_path)
