"""``Project.check``: every column the project file names, for every bundled example and every kind of
key (task sections, cleaning and contract rules), against the source read without its rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from loopml.config import parse_settings
from loopml.errors import ConfigError
from loopml.project import Project, example_names
from loopml.project.check import check_columns, column_refs

SMALL: dict[str, dict[str, Any]] = {  # data options that keep each example small
    "fraud": {"days": 10, "n_customers": 30, "n_terminals": 40},
    "retail": {"months": 1},
    "recommend": {"months": 1},
    "maintenance": {"engines": 3},
    "forecast": {},
}


@pytest.mark.parametrize("name", example_names())
def test_every_example_project_passes_its_check(name: str, tmp_path: Path) -> None:
    project = Project.init(tmp_path / name, example=name, **SMALL.get(name, {}))
    report = project.check()
    assert report.checked and {r.column for r in report.checked} <= set(report.columns)
    assert project.check(against="data").where == report.where  # before any ingest: the source
    assert not (tmp_path / name / ".loopml").exists()  # checking writes nothing


def _settings(extra: str) -> Any:
    return parse_settings("name: s\nsource: {kind: csv, path: data/orders.csv}\ntarget: y\n" + extra)


def test_column_refs_cover_the_task_sections_and_the_rules() -> None:
    settings = _settings(
        "task: ranking\nevent_time: t\nranking: {user: u, item: i, segment: g}\n"
        "train: {segments: [g], group_column: u}\n"
        "cleaning: {missing: {u: keep}, filters: [{rule: r, column: code, op: eq, value: X}]}\n"
        "contract: {columns: {price: {min: 0}}}\n"
        "features: {include: [a], categorical: [code], sequences: {entity: u, order: t, columns: [a]}}\n"
    )
    keys = {ref.key: ref.column for ref in column_refs(settings)}
    assert keys == {
        "target": "y", "event_time": "t", "train.group_column": "u", "train.segments[0]": "g",
        "features.include[0]": "a", "features.categorical[0]": "code", "features.sequences.entity": "u",
        "features.sequences.order": "t", "features.sequences.columns[0]": "a", "ranking.user": "u",
        "ranking.item": "i", "ranking.segment": "g", "cleaning.filters[0].column": "code",
        "cleaning.missing.u": "u", "contract.columns.price": "price",
    }  # fmt: skip


def test_a_miss_suggests_the_closest_column_or_lists_the_columns() -> None:
    settings = _settings("id_column: Customer_ID\n")
    with pytest.raises(
        ConfigError, match=r"id_column 'Customer_ID' is not a column of x; did you mean 'customer_id'"
    ):
        check_columns(settings, ["y", "customer_id"], "x")
    columns = ["y", *(f"c{i}" for i in range(20))]
    with pytest.raises(ConfigError) as info:
        check_columns(_settings("event_time: when\n"), columns, "x")
    assert str(info.value).endswith("its columns are 'y', 'c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', "
                                    "'c7', 'c8', 'c9', 'c10' and 9 more.")  # fmt: skip


def test_the_target_the_id_and_the_time_are_different_columns() -> None:
    with pytest.raises(ConfigError, match="target and id_column both name column 'y'"):
        check_columns(_settings("id_column: y\n"), ["y"], "x")


def test_ingest_of_an_input_file_checks_that_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    pd.DataFrame({"k": [1, 2], "y": [0, 1]}).to_csv(tmp_path / "data" / "orders.csv", index=False)
    config = {
        "name": "s",
        "source": {"kind": "csv", "path": "data/orders.csv"},
        "target": "y",
        "id_column": "k",
    }
    (tmp_path / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    pd.DataFrame({"key": [3], "y": [1]}).to_csv(tmp_path / "fixed.csv", index=False)
    project = Project.open(tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"id_column 'k' is not a column of fixed\.csv"):
        project.ingest(tmp_path / "fixed.csv")
    assert not (tmp_path / ".loopml").exists()
