"""The layer rules of DESIGN.md section 2, enforced by parsing every module's imports.

A module imports only from its own layer or lower ones; nothing but the edge imports ``cli`` or
``dashboard``. Imports under ``if TYPE_CHECKING:`` are for annotations only and are skipped.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

import loopml

PACKAGE_DIR = Path(loopml.__file__).parent
EDGE = 100  # may import anything

# Top-level part of the package (a module or a subpackage) -> its layer.
LAYERS: dict[str, int] = {
    "errors": 0,
    "enums": 0,
    "_optional": 0,
    "_logging": 0,
    "_plugins": 0,
    "_dask": 0,
    "_durations": 0,
    "config": 1,
    "store": 1,
    "sources": 2,
    "examples": 2,
    "validate": 3,
    "features": 4,
    "tasks": 4,
    "registry": 5,
    "actions": 5,
    "scoring": 6,
    "train": 7,
    "serve": 8,
    "batch": 8,
    "monitor": 9,
    "retrain": 10,
    "project": 11,
    "cli": EDGE,
    "dashboard": EDGE,
    "__main__": EDGE,
    "__init__": EDGE,  # loopml/__init__.py: re-exports, and imports ``project`` only lazily
}
EDGE_ONLY = {"cli", "dashboard"}  # nothing below the edge may import these


def _layer_name(layer: int) -> str:
    return "edge" if layer == EDGE else f"L{layer}"


def _modules(root: Path = PACKAGE_DIR) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _part(path: Path, root: Path = PACKAGE_DIR) -> str:
    """The top-level part of the package a file belongs to (``store`` for ``store/engine.py``)."""
    relative = path.relative_to(root)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join(["loopml", *parts])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    target: str  # a dotted module name under loopml


def _imports(path: Path, root: Path = PACKAGE_DIR) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(
                Import(path, node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "loopml"
            )
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module.split(".")[0] != "loopml":
                return
            if module == "loopml":  # ``from loopml import store`` imports a part; ``__version__`` the top
                for alias in node.names:
                    is_part = (root / alias.name).is_dir() or (root / f"{alias.name}.py").is_file()
                    found.append(Import(path, node.lineno, f"loopml.{alias.name}" if is_part else "loopml"))
            else:
                found.append(Import(path, node.lineno, module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _target_part(target: str) -> str:
    parts = target.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_is_given_a_layer() -> None:
    unmapped = sorted({_part(p) for p in _modules()} - set(LAYERS))
    assert unmapped == [], f"give these parts of loopml a layer in tests/test_layers.py: {unmapped}"


def _violations(root: Path) -> list[str]:
    problems: list[str] = []
    for path in _modules(root):
        source_layer = LAYERS.get(_part(path, root))
        if source_layer is None:
            continue  # reported by test_every_module_is_given_a_layer
        for imp in _imports(path, root):
            target_part = _target_part(imp.target)
            target_layer = LAYERS.get(target_part)
            where = f"{path.relative_to(root.parent)}:{imp.line} imports {imp.target}"
            if target_layer is None:
                problems.append(f"{where} (unmapped part '{target_part}')")
            elif target_part in EDGE_ONLY and source_layer != EDGE:
                problems.append(f"{where} (only the edge may import {target_part})")
            elif target_layer > source_layer:
                problems.append(f"{where} (layer {_layer_name(source_layer)} -> {_layer_name(target_layer)})")
    return problems


def test_imports_respect_the_layers() -> None:
    problems = _violations(PACKAGE_DIR)
    assert problems == [], "layer violations:\n" + "\n".join(problems)


def test_the_parser_finds_every_runtime_import(tmp_path: Path) -> None:
    """The parser must catch what it is meant to catch, or the test above proves nothing."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "import loopml.serve.app\n"
        "from loopml.registry import load_model\n"
        "from loopml import cli\n"
        "if TYPE_CHECKING:\n"
        "    from loopml.project import Project\n"
        "else:\n"
        "    import loopml.monitor\n"
        "def f():\n"
        "    from loopml.train import fit\n",
        encoding="utf-8",
    )
    (tmp_path / "cli").mkdir()
    found = [(i.line, i.target) for i in _imports(sample, tmp_path)]
    assert found == [
        (2, "loopml.serve.app"),
        (3, "loopml.registry"),
        (4, "loopml.cli"),
        (8, "loopml.monitor"),
        (10, "loopml.train"),
    ]


def test_violations_are_reported_with_file_line_and_layers(tmp_path: Path) -> None:
    root = tmp_path / "loopml"
    files = {
        "store/__init__.py": "",
        "store/engine.py": "import os\nfrom loopml.serve.app import create_app\n",
        "validate/checks.py": "from ..registry import load_model\nfrom loopml.errors import DataError\n",
        "monitor/report.py": "from loopml import cli\n",
        "cli/main.py": "from loopml.project import Project\nfrom loopml.dashboard import app\n",
        "project.py": "from loopml import __version__, store\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    assert _violations(root) == [
        "loopml/monitor/report.py:1 imports loopml.cli (only the edge may import cli)",
        "loopml/project.py:1 imports loopml (layer L11 -> edge)",
        "loopml/store/engine.py:2 imports loopml.serve.app (layer L1 -> L8)",
        "loopml/validate/checks.py:1 imports loopml.registry (layer L3 -> L5)",
    ]


def _subpackages() -> list[str]:
    return sorted(
        _module_name(p)
        for p in PACKAGE_DIR.rglob("__init__.py")
        if p.parent != PACKAGE_DIR and "migrations" not in p.relative_to(PACKAGE_DIR).parts
    )


@pytest.mark.parametrize("name", _subpackages())
def test_subpackages_define_all_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name}/__init__.py defines no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what does not exist: {missing}"
