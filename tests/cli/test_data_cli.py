"""``loopml ingest`` and ``loopml data`` on the retail example (its first month), through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from loopml.cli import app
from loopml.examples import write_example

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def as_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("retail") / "proj"
    write_example("retail", directory, months=1)
    first = as_json(invoke("ingest", "--project", str(directory), "--json"))
    return {"dir": directory, "p": str(directory), "ingest": first}


def test_init_retail_writes_the_project_and_its_data(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path / "r"), "--example", "retail", "--json")
    assert as_json(result)["example"] == "retail"
    frame = pd.read_parquet(tmp_path / "r" / "data" / "online_retail.parquet")
    assert len(frame) == 541_909  # every published row ships with the package
    config = yaml.safe_load((tmp_path / "r" / "loopml.yaml").read_text(encoding="utf-8"))
    assert {f["rule"] for f in config["cleaning"]["filters"]} == {"cancellation", "non_product_code"}


def test_ingest_json_counts_every_row_once(retail: dict[str, Any]) -> None:
    out = retail["ingest"]
    for key in ("rows_read", "accepted", "quarantined", "quarantine_by_rule", "snapshot", "contract_version"):
        assert key in out
    assert out["accepted"] + out["quarantined"] == out["rows_read"] == 42_481  # December 2010
    assert sum(out["quarantine_by_rule"].values()) == out["quarantined"]
    assert {"cancellation", "non_product_code", "duplicate_row", "range"} <= set(out["quarantine_by_rule"])
    assert out["contract_version"] == 1 and out["contract_created"] and out["new_version"]


def test_second_ingest_finds_nothing_past_the_watermark(retail: dict[str, Any]) -> None:
    out = as_json(invoke("ingest", "-p", retail["p"], "--json"))
    assert (out["rows_read"], out["new_version"], out["version"]) == (0, False, 1)
    text = invoke("ingest", "-p", retail["p"])
    assert text.exit_code == 0 and "Nothing new past the watermark" in text.stdout


def test_data_list_and_show(retail: dict[str, Any]) -> None:
    listed = as_json(invoke("data", "list", "-p", retail["p"], "--json"))
    assert [v["version"] for v in listed["versions"]] == [1]
    shown = as_json(invoke("data", "show", "1", "-p", retail["p"], "--json"))
    assert shown["quarantine_by_rule"] == retail["ingest"]["quarantine_by_rule"]
    assert shown["watermark"]["column"] == "InvoiceDate"
    assert invoke("data", "list", "-p", retail["p"]).exit_code == 0


def test_data_quarantine_lists_and_exports(retail: dict[str, Any], tmp_path: Path) -> None:
    out = as_json(
        invoke("data", "quarantine", "-p", retail["p"], "--rule", "cancellation", "--limit", "2",
               "--export", str(tmp_path / "c.csv"), "--json")
    )  # fmt: skip
    assert out["rows"] == retail["ingest"]["quarantine_by_rule"]["cancellation"]
    assert [r["_rule"] for r in out["sample"]] == ["cancellation"] * 2
    assert all(r["_value"].startswith("C") for r in out["sample"])
    exported = pd.read_csv(tmp_path / "c.csv")
    assert len(exported) == out["rows"] and exported["InvoiceNo"].str.startswith("C").all()
    text = invoke("data", "quarantine", "-p", retail["p"])
    assert text.exit_code == 0 and "cancellation" in text.stdout


def test_fixed_rows_ingest_again_and_diff_shows_them(retail: dict[str, Any], tmp_path: Path) -> None:
    out = as_json(invoke("data", "quarantine", "-p", retail["p"], "--rule", "range", "--export",
                         str(tmp_path / "r.csv"), "--json"))  # fmt: skip
    rows = pd.read_csv(tmp_path / "r.csv")
    rows["Quantity"], rows["UnitPrice"] = rows["Quantity"].abs().clip(lower=1), rows["UnitPrice"].abs() + 1
    rows.to_csv(tmp_path / "fixed.csv", index=False)
    again = as_json(invoke("ingest", "-p", retail["p"], "--input", str(tmp_path / "fixed.csv"), "--json"))
    assert again["rows_read"] == out["rows"] and again["version"] == 2
    diff = as_json(invoke("data", "diff", "1", "2", "-p", retail["p"], "--json"))
    assert diff["rows_added"] == again["accepted"] and diff["rows_removed"] == 0


def test_accept_schema_with_nothing_to_accept_is_a_one_line_error(retail: dict[str, Any]) -> None:
    result = invoke("data", "accept-schema", "-p", retail["p"])
    assert result.exit_code == 4 and "nothing to accept" in result.stderr
    assert "Traceback" not in result.output


def test_accept_schema_after_a_new_column(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    (directory / "data").mkdir(parents=True)
    pd.DataFrame({"k": [1, 2], "v": [0.5, 1.5]}).to_csv(directory / "data" / "a.csv", index=False)
    config = {"name": "t", "source": {"kind": "csv", "path": "data/a.csv"}, "target": "v"}
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert invoke("ingest", "-p", str(directory)).exit_code == 0
    pd.DataFrame({"k": [3], "v": ["oops"], "w": ["new"]}).to_csv(directory / "data" / "a.csv", index=False)
    refused = invoke("ingest", "-p", str(directory), "--json")
    assert refused.exit_code == 4 and "column v changed type float -> string" in refused.stderr
    accepted = as_json(invoke("data", "accept-schema", "-p", str(directory), "--json"))
    assert accepted["contract_version"] == 2 and accepted["added"] == ["w"]
    assert as_json(invoke("ingest", "-p", str(directory), "--json"))["contract_version"] == 2


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["data", "show", "9"], 5, "has no version 9"),
        (["data", "diff", "1", "7"], 5, "has no version 7"),
        (["data", "quarantine", "--export", "x.txt"], 4, "must end in .csv or .parquet"),
    ],
)
def test_user_mistakes_exit_non_zero_with_one_line(
    retail: dict[str, Any], args: list[str], code: int, fragment: str
) -> None:
    result = invoke(*args, "-p", retail["p"])
    assert result.exit_code == code and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.output


def test_bad_source_settings_are_one_line_errors(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "data.csv").write_text("a;b\n1;2\n", encoding="utf-8")
    config = {"name": "t", "source": {"kind": "csv", "path": "data.csv"}, "target": "b"}
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = invoke("ingest", "-p", str(directory))
    assert result.exit_code == 4 and "source.options.sep" in result.stderr
    config["source"] = {"kind": "sql", "table": "t"}
    (directory / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = invoke("ingest", "-p", str(directory))
    assert result.exit_code == 2 and "missing required key 'source.url'" in result.stderr
