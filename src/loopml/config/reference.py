"""The reference of every key of ``loopml.yaml`` as Markdown (``docs/config.md``), made from the models.

Each section of the project file is a table: key, type (with its bounds), default, meaning (the
field's ``description``) and an example. Regenerate the page after changing a model::

    python -m loopml.config.reference docs/config.md

``tests/test_docs.py`` fails while the page differs from what this module makes.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from loopml.config._base import ENV_PREFIX, Duration, DurationOrAuto
from loopml.config.schema import SCHEMA_FILE, _markdown

__all__ = ["MINIMAL_EXAMPLE", "Section", "markdown", "markdown_text", "sections", "write_page"]

MINIMAL_EXAMPLE = """\
# yaml-language-server: $schema=loopml.schema.json
name: orders
task: binary
source: {kind: csv, path: data/orders.csv}
target: churned
id_column: order_id
event_time: ordered_at
"""
"""The smallest useful project file (every other key has a default); shown at the top of the page."""

_REGENERATE = "python -m loopml.config.reference docs/config.md"
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", SecretStr: "string (secret)"}
_PLACEHOLDERS = {"columns": "<column>", "missing": "<column>", "endpoints": "<endpoint>"}
_CODE = re.compile(r"(`[^`]*`)")
_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "length ≥"))


@dataclass(frozen=True)
class Section:
    """One mapping of the project file: where it sits (``train.tune``) and the model that reads it."""

    path: str
    model: type[BaseModel]

    @property
    def anchor(self) -> str:
        """The heading's id as MkDocs (and GitHub) make it: word characters and hyphens, lower case."""
        return re.sub(r"[^\w-]", "", self.path).lower()


def sections(root: type[BaseModel] | None = None) -> list[Section]:
    """Every section under ``root`` (default :class:`~loopml.config.Settings`), depth first.

    Examples:
        >>> [s.path for s in sections()][:4]
        ['(top level)', 'source', 'cleaning', 'cleaning.missing.<column>']
    """
    if root is None:
        from loopml.config import Settings

        root = Settings
    return list(_walk(root, ""))


def _walk(model: type[BaseModel], path: str) -> Iterator[Section]:
    yield Section(path or "(top level)", model)
    for name, field in _fields(model):
        for child, suffix in _children(field.annotation, name):
            yield from _walk(child, f"{path}.{suffix}" if path else suffix)


def _fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    return [(name, f) for name, f in model.model_fields.items() if not f.exclude]


def _children(annotation: Any, name: str) -> Iterator[tuple[type[BaseModel], str]]:
    """The models a field holds, with the path suffix of each (``rules[]``, ``columns.<column>``)."""
    if _is_model(annotation):
        yield annotation, name
        return
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list:
        yield from ((m, f"{name}[]") for m, _ in _children(args[0], name))
    elif origin is dict:
        yield from ((m, f"{name}.{_PLACEHOLDERS.get(name, '<name>')}") for m, _ in _children(args[1], name))
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from _children(arg, name)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _type(annotation: Any, link: str) -> str:
    """A field's type in words (``list of duration``); a section links to its table."""
    if annotation is type(None):
        return "null"
    if annotation == Duration:
        return "duration"
    if annotation == DurationOrAuto:
        return "duration or `auto`"
    if _is_model(annotation):
        return f"[section](#{link})"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type(args[0], link)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_type(arg, link) for arg in args if arg is not type(None))
    if origin is list:
        return f"list of {_type(args[0], link)}"
    if origin is dict:
        return f"map of name to {_type(args[1], link)}"
    return _SCALARS.get(annotation, "any")


def _bounds(field: FieldInfo) -> str:
    found = []
    for item in field.metadata:
        found += [f"{sign} {getattr(item, attr)}" for attr, sign in _BOUNDS if hasattr(item, attr)]
        if getattr(item, "pattern", None):
            found.append(f"matching `{item.pattern}`")
    return ", ".join(found)


def _flow(value: Any) -> str:
    """A value as YAML flow (``[1d, 7d]``, ``{fill: 0}``), on one line."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Enum):
        value = value.value
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "see the section"
    return f"`{_flow(value)}`"


def _example(name: str, field: FieldInfo) -> str:
    """``key: value``: the field's ``examples``, else a choice other than the default, else the default."""
    if field.examples:
        value = field.examples[0]
    elif any(_children(field.annotation, name)):
        return ""
    else:
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        choices = [c for c in _choices(field.annotation) if c != default]
        value = choices[0] if choices else default
        if value in (None, [], {}):
            return ""
    return f"`{name}: {_flow(value)}`"


def _choices(annotation: Any) -> list[Any]:
    """The values a closed type allows (a literal, an enum, a boolean), for an example."""
    if annotation is bool:
        return [True, False]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [member.value for member in annotation]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return list(args)
    if origin in (Union, types.UnionType):
        return [c for arg in args for c in _choices(arg)]
    return []


def markdown_text(text: str, *, cell: bool = False) -> str:
    """Plain text as Markdown: ``<`` and ``>`` outside code spans shown, not read as HTML; in a table
    ``cell``, on one line with the pipes outside code spans escaped (MkDocs reads one inside as text).

    Examples:
        >>> markdown_text("a <b> | `c|d`", cell=True)
        'a &lt;b&gt; \\\\| `c|d`'
    """
    if cell:
        text = " ".join(text.split())
    parts = _CODE.split(text)
    for i, part in enumerate(parts):
        if not part.startswith("`"):
            part = part.replace("<", "&lt;").replace(">", "&gt;")
            parts[i] = part.replace("|", "\\|") if cell else part
    return "".join(parts)


def _cell(text: str) -> str:
    return markdown_text(text, cell=True)


def _table(section: Section, links: dict[tuple[str, str], str]) -> list[str]:
    rows = ["| key | type | default | meaning | example |", "| --- | --- | --- | --- | --- |"]
    for name, field in _fields(section.model):
        kind = _type(field.annotation, links.get((section.path, name), ""))
        bounds = _bounds(field)
        rows.append(
            "| "
            + " | ".join(
                _cell(cell)
                for cell in (
                    f"`{name}`",
                    f"{kind}, {bounds}" if bounds else kind,
                    _default(field),
                    _markdown(field.description or ""),
                    _example(name, field),
                )
            )
            + " |"
        )
    return rows


def _intro(model: type[BaseModel]) -> list[str]:
    doc = (model.__doc__ or "").strip()
    if not doc or model.__module__ == "pydantic.main":
        return []
    lines = doc.splitlines()
    body = "\n".join([lines[0], *(line.removeprefix("    ") for line in lines[1:])])
    return [markdown_text(_markdown(body).replace("::\n", ":\n")), ""]


def _links(all_sections: Sequence[Section]) -> dict[tuple[str, str], str]:
    """(section path, key) -> the anchor of the section that key holds."""
    by_path = {s.path: s for s in all_sections}
    links: dict[tuple[str, str], str] = {}
    for section in all_sections:
        prefix = "" if section.path == "(top level)" else f"{section.path}."
        for name, field in _fields(section.model):
            for _, suffix in _children(field.annotation, name):
                links[(section.path, name)] = by_path[f"{prefix}{suffix}"].anchor
    return links


def markdown() -> str:
    """The whole reference page (``docs/config.md``)."""
    all_sections = sections()
    links = _links(all_sections)
    out = [
        "# Configuration reference: loopml.yaml",
        "",
        f"<!-- Generated from the pydantic models in src/loopml/config/ by `{_REGENERATE}`. "
        "Do not edit by hand: change a model's `description=` and regenerate. -->",
        "",
        "One `loopml.yaml` describes one ML system. Every key but `name`, `source` and `target` has a "
        "default, so a minimal file is short:",
        "",
        "```yaml",
        MINIMAL_EXAMPLE.rstrip(),
        "```",
        "",
        "An unknown key, a wrong type or bad YAML is a one-line error naming the key, its line and the "
        "closest valid key. Environment variables override the file: `LOOPML_DB_URL` and "
        "`LOOPML_ARTIFACTS_URL` for the stores, `LOOPML_ONLINE_URL` for the online state of window "
        f"features (`serve.online_store`), and `{ENV_PREFIX}<SECTION>__<KEY>` for any key "
        "(`LOOPML_SERVE__PORT=9000`, `LOOPML_TRAIN__TUNE__TRIALS=20`).",
        "",
        f"**In an editor.** `loopml init` writes the JSON Schema of this file into the project "
        f"(`{SCHEMA_FILE}`) and starts `loopml.yaml` with `# yaml-language-server: $schema={SCHEMA_FILE}`, "
        "so editors that use the YAML language server (VS Code's YAML extension, among others) complete "
        "the keys, show these descriptions and flag an unknown key, offline. `loopml config schema` "
        "prints the schema (`--output FILE` writes it).",
        "",
        "Types: a *duration* is a number and a unit, `30s`, `10m`, `1h`, `7d` or `2w`; *unset* means "
        "the key is absent (or `null`) and the behaviour its meaning describes applies. `<column>`, "
        "`<endpoint>`: a name of your choosing; `[]`: each item of a list.",
        "",
    ]
    for section in all_sections:
        heading = "Top-level keys" if section.model is all_sections[0].model else f"`{section.path}`"
        out += [f"## {heading}", "", *_intro(section.model), *_table(section, links), ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m loopml.config.reference [FILE]``: write the page to FILE, or print it."""
    return write_page(markdown(), argv)


def write_page(text: str, argv: Sequence[str] | None = None) -> int:
    """Write a generated page ``text`` to the file named first in ``argv`` (default: the command
    line), or print it when none is named; the exit code 0."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
