"""Plugin registries: short names resolve to objects; bad names and specs are one-line ConfigErrors."""

from __future__ import annotations

import json

import pytest

from loopml import _plugins
from loopml.errors import ConfigError
from loopml.sources.files import CsvSource, ParquetSource


def test_resolve_builtin_sources() -> None:
    assert _plugins.resolve("sources", "csv") is CsvSource
    assert _plugins.resolve("sources", "parquet") is ParquetSource


def test_available_lists_builtins() -> None:
    assert _plugins.available("sources") == {
        "csv": "loopml.sources.files:CsvSource",
        "parquet": "loopml.sources.files:ParquetSource",
        "sql": "loopml.sources.sql:SqlSource",
    }


def test_builtins_are_also_declared_as_entry_points() -> None:
    """Built-ins use the same mechanism as third parties: the installed metadata declares them."""
    declared = _plugins._entry_point_names("sources")
    assert declared.get("csv") == "loopml.sources.files:CsvSource"
    assert declared.get("parquet") == "loopml.sources.files:ParquetSource"


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as info:
        _plugins.resolve("sources", "cvs")
    assert str(info.value) == "unknown source kind 'cvs'; did you mean 'csv'?"


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        _plugins.resolve("sources", "xlsx")
    assert str(info.value) == "unknown source kind 'xlsx'; valid: 'csv', 'parquet', 'sql'"


def test_unknown_name_of_a_kind_without_plugins() -> None:
    with pytest.raises(ConfigError) as info:
        _plugins.resolve("gadgets", "thing")
    assert str(info.value) == "unknown gadget kind 'thing'; no gadget plugins are installed"


def test_load_object() -> None:
    assert _plugins.load_object("json:loads") is json.loads
    assert _plugins.load_object("loopml.sources.files:CsvSource") is CsvSource


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("json.loads", "estimator 'json.loads' is not of the form 'package.module:Name'."),
        ("json:", "estimator 'json:' is not of the form 'package.module:Name'."),
        (":loads", "estimator ':loads' is not of the form 'package.module:Name'."),
        ("", "estimator '' is not of the form 'package.module:Name'."),
        (
            "loopml.nosuch:Thing",
            "estimator 'loopml.nosuch:Thing': cannot import module 'loopml.nosuch' "
            "(No module named 'loopml.nosuch').",
        ),
        (
            "loopml.sources.files:CsvSorce",
            "estimator 'loopml.sources.files:CsvSorce': module 'loopml.sources.files' has no attribute "
            "'CsvSorce'; did you mean 'CsvSource'?",
        ),
    ],
)
def test_load_object_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _plugins.load_object(spec, what="estimator")
    assert str(info.value) == message


def test_missing_attribute_without_a_close_match_lists_public_names() -> None:
    with pytest.raises(ConfigError) as info:
        _plugins.load_object("loopml.sources.files:Zzzzzzzz")
    message = str(info.value)
    assert message.startswith("object 'loopml.sources.files:Zzzzzzzz': module 'loopml.sources.files' has no ")
    assert "valid: " in message and "'CsvSource'" in message and "'ParquetSource'" in message
    assert "'_expand'" not in message  # private names are not suggested
