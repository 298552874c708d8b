"""The JSON Schema of loopml.yaml (``loopml config schema``) agrees with the loader: the bundled
examples pass both, and what the loader refuses (an unknown key, a value out of a closed set, a bad
duration) the schema flags too, so an editor shows it before a command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from loopml.cli import app
from loopml.config import (
    SCHEMA_FILE,
    json_schema,
    parse_settings,
    schema_header,
    with_schema_header,
    write_schema,
)
from loopml.config.schema import MODELINE, PACKAGED_SCHEMA
from loopml.errors import ConfigError
from loopml.project import Project

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "src" / "loopml" / "examples").glob("*/loopml.yaml"))
MINIMAL = {"name": "orders", "source": {"kind": "csv", "path": "orders.csv"}, "target": "churned"}
runner = CliRunner()


def _errors(document: dict[str, Any]) -> list[jsonschema.ValidationError]:
    return list(jsonschema.Draft202012Validator(json_schema()).iter_errors(document))


def test_the_schema_is_a_valid_json_schema_with_descriptions() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert "project_dir" not in schema["properties"]
    assert schema["properties"]["id_column"]["description"].startswith("Column unique per row")
    assert schema["properties"]["train"]["description"] == "How a model is fitted and judged."


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_every_bundled_example_is_valid_and_points_at_the_packaged_schema(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first == f"{MODELINE}../../config/{SCHEMA_FILE}"
    assert (path.parent / first.removeprefix(MODELINE)).resolve() == PACKAGED_SCHEMA
    assert _errors(yaml.safe_load(text)) == []
    parse_settings(text, project_dir=path.parent, environ={})  # the loader agrees


@pytest.mark.parametrize(
    ("document", "where", "loader_says"),
    [
        ({**MINIMAL, "train": {"modle": "ridge"}}, ["train"], "did you mean 'model'"),
        ({**MINIMAL, "targte": "x"}, [], "unknown key 'targte'"),
        ({**MINIMAL, "task": "binari"}, ["task"], "did you mean 'binary'"),
        ({**MINIMAL, "monitor": {"window": "1 day"}}, ["monitor", "window"], "durations look like"),
        ({**MINIMAL, "serve": {"port": 70000}}, ["serve", "port"], "65535"),
        ({k: v for k, v in MINIMAL.items() if k != "target"}, [], "missing required key 'target'"),
    ],
)
def test_what_the_loader_refuses_the_schema_flags(
    document: dict[str, Any], where: list[str], loader_says: str
) -> None:
    errors = _errors(document)
    assert errors, "the schema accepts what loopml refuses"
    assert list(errors[0].absolute_path) == where
    with pytest.raises(ConfigError, match=loader_says):
        parse_settings(yaml.safe_dump(document), environ={})


def test_an_action_endpoint_takes_its_plugin_options() -> None:
    endpoint = {"kind": "webhook", "url": "https://x.example.com/h", "secret_env": "S"}
    rule = {"name": "r", "endpoint": "cases", "when": [{"field": "score", "op": ">=", "value": 0.5}]}
    assert _errors({**MINIMAL, "actions": {"endpoints": {"cases": endpoint}, "rules": [rule]}}) == []


def test_the_header_replaces_a_modeline_and_keeps_the_rest() -> None:
    text = "# yaml-language-server: $schema=../../config/loopml.schema.json\n# comment\nname: x\n"
    assert with_schema_header(text) == f"{schema_header()}\n# comment\nname: x\n"
    assert with_schema_header("name: x\n") == f"{schema_header()}\nname: x\n"
    assert with_schema_header("name: x\n", "schemas/loopml.json").startswith(
        f"{MODELINE}schemas/loopml.json\n"
    )


def test_write_schema_writes_the_schema_beside_the_project_file(tmp_path: Path) -> None:
    path = write_schema(tmp_path)
    assert path == tmp_path / SCHEMA_FILE
    assert json.loads(path.read_text(encoding="utf-8")) == json_schema()


def test_a_project_made_from_an_example_points_its_editor_at_its_own_schema(tmp_path: Path) -> None:
    project = Project.init(tmp_path / "retail", example="retail")
    text = project.project_file.read_text(encoding="utf-8")
    assert text.splitlines()[0] == schema_header()
    schema_file = project.project_file.parent / SCHEMA_FILE
    assert json.loads(schema_file.read_text(encoding="utf-8")) == json_schema()
    assert _errors(yaml.safe_load(text)) == []


def test_loopml_config_schema_prints_the_schema() -> None:
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json_schema()


def test_loopml_config_schema_writes_a_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "schema", "--output", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8")) == json_schema()


def test_loopml_config_schema_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "schema", "-o", str(tmp_path / "no" / "s.json")])
    assert result.exit_code != 0
    assert result.stderr.strip().startswith("error: --output")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_project_made_from_a_file_is_valid_against_its_own_schema(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i % 7}.5,{'ab'[i % 2]},{i % 3 == 0}" for i in range(60))
    (tmp_path / "orders.csv").write_text(f"order_id,amount [EUR],kind,churned\n{rows}\n", encoding="utf-8")
    result = runner.invoke(
        app,
        ["init", str(tmp_path / "p"), "--from", str(tmp_path / "orders.csv"), "--target", "churned"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "p" / "loopml.yaml").read_text(encoding="utf-8")
    assert text.splitlines()[0] == schema_header()
    assert (tmp_path / "p" / SCHEMA_FILE).is_file()
    assert _errors(yaml.safe_load(text)) == []
