"""User mistakes with files: wrong encoding, empty file, wrong delimiter, unreadable file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loopml.errors import DataError
from loopml.sources import CsvSource, ParquetSource, read_all


def _error(source: CsvSource | ParquetSource) -> str:
    with pytest.raises(DataError) as info:
        read_all(source)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_wrong_encoding_names_the_option(tmp_path: Path) -> None:
    file = tmp_path / "latin.csv"
    file.write_bytes("name,city\nJosé,Zürich\n".encode("latin-1"))
    message = _error(CsvSource(str(file)))
    assert message.startswith(f"cannot decode CSV file '{file}' as utf-8")
    assert "source.options.encoding" in message
    assert read_all(CsvSource(str(file), encoding="latin-1"))["city"].tolist() == ["Zürich"]


def test_empty_file(tmp_path: Path) -> None:
    file = tmp_path / "empty.csv"
    file.write_text("", encoding="utf-8")
    assert _error(CsvSource(str(file))).startswith(f"CSV file '{file}' is empty")


def test_wrong_delimiter_suggests_the_right_one(tmp_path: Path) -> None:
    file = tmp_path / "semi.csv"
    file.write_text("id;amount;city\n1;2.5;oslo\n", encoding="utf-8")
    message = _error(CsvSource(str(file)))
    assert "its delimiter looks like ';'" in message and "source.options.sep: ';'" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    file = tmp_path / "locked.csv"
    file.write_text("a\n1\n", encoding="utf-8")
    file.chmod(0)
    assert _error(CsvSource(str(file))).startswith(f"cannot read CSV file '{file}'")


def test_parquet_missing_column(tmp_path: Path) -> None:
    import pandas as pd

    file = tmp_path / "a.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(file)
    assert "has no column(s) b" in _error(ParquetSource(str(file), columns=["a", "b"]))
