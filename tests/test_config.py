"""The project file: one-line errors naming the key, environment overrides, frozen settings, defaults."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.config import PROJECT_FILE, Settings, load_settings, parse_settings
from loopml.errors import ConfigError, ProjectNotFoundError

MINIMAL = """\
name: demo
source:
  path: data.csv
target: y
"""


def _error(text: str, **kwargs: object) -> str:
    """The message of the ConfigError that parsing ``text`` raises (with no environment overrides)."""
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError) as info:
        parse_settings(text, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message, f"the message must be one line: {message!r}"
    return message


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / PROJECT_FILE).write_text(text, encoding="utf-8")
    return directory


# -- errors, one kind per test -------------------------------------------------------------------


def test_unknown_top_level_key_lists_the_valid_keys() -> None:
    assert _error(MINIMAL + "zzzzzz: 1\n") == (
        "loopml.yaml line 5: unknown key 'zzzzzz'; valid: 'actions', 'cleaning', 'contract', 'event_time', "
        "'features', 'forecast', 'id_column', 'maintenance', 'monitor', 'name', 'ranking', 'retrain', "
        "'serve', 'source', 'store', 'target', 'task', 'train'"
    )


def test_unknown_top_level_key_suggests_the_closest() -> None:
    assert (
        _error(MINIMAL + "serv:\n  port: 1\n")
        == "loopml.yaml line 5: unknown key 'serv'; did you mean 'serve'?"
    )


def test_unknown_nested_key_suggests_the_closest_with_its_line() -> None:
    text = MINIMAL + "train:\n  seed: 1\n  modle: logistic\n"
    assert _error(text) == "loopml.yaml line 7: unknown key 'train.modle'; did you mean 'model'?"


def test_wrong_type() -> None:
    assert _error(MINIMAL + "serve:\n  port: abc\n") == (
        "loopml.yaml line 6: 'serve.port' input should be a valid integer, unable to parse string as an "
        "integer, got 'abc'."
    )


def test_value_not_among_the_allowed_ones() -> None:
    assert _error(MINIMAL + "task: clustering\n") == (
        "loopml.yaml line 5: 'task' is 'clustering'; valid: 'binary', 'forecast', 'multiclass', 'ranking', "
        "'regression'"
    )


def test_missing_required_key() -> None:
    assert _error("name: demo\nsource:\n  path: d.csv\n") == (
        "loopml.yaml: missing required key 'target'; add it to loopml.yaml."
    )


def test_missing_required_nested_key() -> None:
    assert _error("name: demo\nsource:\n  kind: csv\ntarget: y\n") == (
        "loopml.yaml line 2: missing required key 'source.path'; add it to loopml.yaml."
    )


def test_missing_file_names_the_directory_and_hints_at_init(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(ProjectNotFoundError) as info:
        load_settings(empty, environ={})
    err = info.value
    assert err.message == f"no loopml.yaml in {empty.resolve()}"
    assert err.hint is not None and "loopml init" in err.hint
    assert "\n" not in str(err)
    assert isinstance(err, ConfigError)


def test_bad_yaml_gives_line_and_column() -> None:
    assert _error("name: demo\n  bad: : x\n") == (
        "loopml.yaml line 2, column 6: not valid YAML: mapping values are not allowed here."
    )
    assert _error(MINIMAL + "serve:\n  port: [1\n") == (
        "loopml.yaml line 7, column 1: not valid YAML: expected ',' or ']', but got '<stream end>'."
    )


def test_top_level_must_be_a_mapping() -> None:
    assert _error("- a\n- b\n") == "loopml.yaml: expected a mapping of keys at the top level, got list."


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    project = _write(tmp_path / "p", MINIMAL + "train:\n  modle: logistic\n")
    with pytest.raises(ConfigError) as info:
        load_settings(project, environ={})
    file = project / PROJECT_FILE
    assert str(info.value) == f"{file} line 6: unknown key 'train.modle'; did you mean 'model'?"


# -- environment overrides ------------------------------------------------------------------------


def test_env_overrides_db_url_and_any_key(tmp_path: Path) -> None:
    project = _write(tmp_path / "p", MINIMAL + "serve:\n  host: 0.0.0.0\n")
    environ = {
        "LOOPML_DB_URL": "postgresql://u@db/loopml",
        "LOOPML_ARTIFACTS_URL": "s3://bucket/loopml",
        "LOOPML_SERVE__PORT": "9000",
        "LOOPML_TRAIN__PARAMS": "{n_estimators: 7}",
    }
    s = load_settings(project, environ=environ)
    assert s.db_url == "postgresql://u@db/loopml"
    assert s.artifacts_url == "s3://bucket/loopml"
    assert s.serve.port == 9000
    assert s.serve.host == "0.0.0.0"  # the rest of the section stays as the file says
    assert s.train.params == {"n_estimators": 7}


def test_env_overrides_read_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_SERVE__PORT", "9001")
    assert parse_settings(MINIMAL).serve.port == 9001


def test_unknown_env_override_names_the_variable_and_key() -> None:
    message = _error(MINIMAL + "serve:\n  host: h\n", environ={"LOOPML_SERVE__PROT": "1"})
    assert (
        message == "environment variable LOOPML_SERVE__PROT: unknown key 'serve.prot'; did you mean 'port'?"
    )


def test_unknown_env_override_section() -> None:
    message = _error(MINIMAL, environ={"LOOPML_SERV__PORT": "1"})
    assert message == "environment variable LOOPML_SERV__PORT: unknown key 'serv'; did you mean 'serve'?"


def test_env_override_of_the_wrong_type_names_the_variable() -> None:
    message = _error(MINIMAL + "serve:\n  host: h\n", environ={"LOOPML_SERVE__PORT": "abc"})
    assert message == (
        "environment variable LOOPML_SERVE__PORT: 'serve.port' input should be a valid integer, "
        "unable to parse string as an integer, got 'abc'."
    )


def test_env_override_into_a_scalar_is_refused() -> None:
    assert _error(MINIMAL, environ={"LOOPML_NAME__X": "1"}) == (
        "environment variable LOOPML_NAME__X: 'name' is not a section."
    )


def test_test_and_unrelated_variables_are_ignored() -> None:
    environ = {
        "LOOPML_TEST_POSTGRES_URL": "postgresql://x",
        "LOOPML_TEST__SERVE__PORT": "1",
        "LOOPML_SOMETHING_ELSE": "1",
        "LOOPML_SERVE__PORT": "",  # empty means unset
        "PATH": "/bin",
    }
    s = parse_settings(MINIMAL, environ=environ)
    assert s.serve.port == 8000


# -- the settings object --------------------------------------------------------------------------


def test_settings_are_frozen() -> None:
    s = parse_settings(MINIMAL, environ={})
    with pytest.raises(pydantic.ValidationError):
        s.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        s.serve.port = 1  # type: ignore[misc]


def test_defaults(tmp_path: Path) -> None:
    project = _write(tmp_path / "p", MINIMAL)
    s = load_settings(project, environ={})
    root = project.resolve()
    assert s.project_dir == root
    assert s.state_dir == root / ".loopml"
    assert s.db_url == f"sqlite:///{root / '.loopml' / 'loopml.db'}"
    assert s.artifacts_url == str(root / ".loopml" / "artifacts")
    assert s.task == "binary"
    assert s.source.kind == "parquet"
    assert s.train.model == "lightgbm" and s.train.seed == 42
    assert (s.serve.host, s.serve.port, s.serve.alias) == ("127.0.0.1", 8000, "champion")


def test_load_settings_accepts_a_file_path(tmp_path: Path) -> None:
    project = _write(tmp_path / "p", MINIMAL)
    assert load_settings(project / PROJECT_FILE, environ={}).project_dir == project.resolve()


def test_the_example_project_loads(tiny_project: Path) -> None:
    s = load_settings(tiny_project, environ={})
    assert s.name == "fraud"
    assert s.target == "tx_fraud"
    assert s.db_url == f"sqlite:///{tiny_project.resolve() / '.loopml' / 'loopml.db'}"


# -- property -------------------------------------------------------------------------------------

_KEY_CHARS = st.characters(categories=("L", "N"), include_characters="_-.", max_codepoint=0x2FFF)


@settings(max_examples=75, deadline=None)
@given(key=st.text(_KEY_CHARS, min_size=1, max_size=20).filter(lambda k: k not in Settings.model_fields))
def test_any_unknown_top_level_key_is_rejected_by_name(key: str) -> None:
    text = MINIMAL + yaml.safe_dump({key: 1})
    message = _error(text)
    assert f"unknown key '{key}'" in message
