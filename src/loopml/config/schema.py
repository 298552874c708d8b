"""The JSON Schema of ``loopml.yaml``, for editors that complete and check keys as one types.

The schema is pydantic's JSON Schema of :class:`~loopml.config.Settings`, descriptions included. A
project points its editor at it with a first line that the YAML language server (VS Code's YAML
extension, and the editors built on the same server) reads::

    # yaml-language-server: $schema=loopml.schema.json

The path is relative to the YAML file, so it works offline: ``loopml init`` writes the schema into
the project beside ``loopml.yaml`` (:func:`write_schema`) and starts the file with
:func:`schema_header`; ``loopml config schema`` prints it. The package ships the same schema as
``loopml/config/loopml.schema.json``, which the bundled examples' project files point at.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

__all__ = [
    "MODELINE",
    "PACKAGED_SCHEMA",
    "SCHEMA_FILE",
    "json_schema",
    "schema_header",
    "schema_text",
    "with_schema_header",
    "write_schema",
]

SCHEMA_FILE = "loopml.schema.json"
"""The schema's file name, in a project (beside ``loopml.yaml``) and in this package."""
PACKAGED_SCHEMA = Path(__file__).with_name(SCHEMA_FILE)
"""The schema shipped in the package (the bundled examples' ``loopml.yaml`` point at it)."""
MODELINE = "# yaml-language-server: $schema="
"""The comment that the YAML language server reads on a file's first lines."""
_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_RST_LITERAL = re.compile(r"``([^`]+)``")
_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def _markdown(text: str) -> str:
    """A docstring's reStructuredText literals (````x````, ``:func:`x```) as Markdown code (```x```)."""
    return _RST_LITERAL.sub(r"`\1`", _RST_ROLE.sub(r"`\1`", text))


def _clean(node: Any) -> Any:
    """Descriptions in Markdown, and no pydantic titles (the key names say it)."""
    if isinstance(node, dict):
        cleaned = {k: _clean(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
        if isinstance(cleaned.get("description"), str):
            cleaned["description"] = _markdown(cleaned["description"])
        return cleaned
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from ``model``'s fields, by class name (the keys of ``$defs``)."""
    found = {model.__name__: model}
    for field in model.model_fields.values():
        for inner in _nested_types(field.annotation):
            if isinstance(inner, type) and issubclass(inner, BaseModel) and inner.__name__ not in found:
                found.update(_models(inner))
    return found


def _nested_types(annotation: Any) -> list[Any]:
    return [annotation, *(t for arg in get_args(annotation) for t in _nested_types(arg))]


def _describe_sections(schema: dict[str, Any], root: type[BaseModel]) -> None:
    """pydantic drops a field's description beside a ``$ref`` (a section): put it back."""
    models = _models(root)
    for name, node in [(root.__name__, schema), *schema.get("$defs", {}).items()]:
        model = models.get(name)
        for key, prop in node.get("properties", {}).items():
            field = model.model_fields.get(key) if model else None
            if field is not None and field.description and "description" not in prop:
                prop["description"] = field.description


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``loopml.yaml``: every key with its type, default and description.

    Unknown keys are refused (``additionalProperties: false``), as :func:`~loopml.config.load_settings`
    refuses them, except in an action endpoint, whose other keys are its plugin's options.

    Examples:
        >>> schema = json_schema()
        >>> schema["required"]
        ['name', 'source', 'target']
        >>> schema["properties"]["serve"]["description"]
        'The prediction API.'
    """
    from loopml.config import Settings

    raw = Settings.model_json_schema(mode="validation")
    _describe_sections(raw, Settings)
    schema = _clean(raw)
    schema["properties"].pop("project_dir", None)  # where the file was found, never a key of it
    return {
        "$schema": _DRAFT,
        "title": "loopml.yaml",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    """:func:`json_schema` as the text of a ``.json`` file (sorted keys, so a diff shows real changes)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_header(location: str = SCHEMA_FILE) -> str:
    """The first line of a project file that points the YAML language server at the schema.

    ``location`` is a path relative to the ``loopml.yaml`` file (or a URL).

    Examples:
        >>> schema_header()
        '# yaml-language-server: $schema=loopml.schema.json'
    """
    return f"{MODELINE}{location}"


def with_schema_header(text: str, location: str = SCHEMA_FILE) -> str:
    """``text`` (a ``loopml.yaml``) starting with :func:`schema_header`; an existing modeline on its
    first line is replaced (the bundled examples point at the package's schema, a project at its own).

    Examples:
        >>> with_schema_header("name: fraud\\n")
        '# yaml-language-server: $schema=loopml.schema.json\\nname: fraud\\n'
        >>> with_schema_header("# yaml-language-server: $schema=../x.json\\nname: fraud\\n")
        '# yaml-language-server: $schema=loopml.schema.json\\nname: fraud\\n'
    """
    first, _, rest = text.partition("\n")
    body = rest if first.startswith(MODELINE) else text
    return f"{schema_header(location)}\n{body}"


def write_schema(directory: str | Path) -> Path:
    """Write the schema into ``directory`` as ``loopml.schema.json`` (beside a project's
    ``loopml.yaml``); returns its path."""
    path = Path(directory) / SCHEMA_FILE
    path.write_text(schema_text(), encoding="utf-8")
    return path
