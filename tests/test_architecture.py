"""The architecture of docs/architecture.md holds: import-linter's contracts (in pyproject.toml) pass,
and they do catch an upward import, a way around the one door, SQL at the edge and a cycle; each
subpackage lists its public names; no module outside ``loopml.tasks`` branches on a task's name."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import loopml
from loopml.enums import TaskKind

PACKAGE_DIR = Path(loopml.__file__).parent
ROOT = PACKAGE_DIR.parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(source_root: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold() -> None:
    result = _lint_imports(PACKAGE_DIR.parent, ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_the_contracts_catch_each_kind_of_violation(tmp_path: Path) -> None:
    """A copy of the package with one violation of each contract: every contract must break."""
    copy = tmp_path / "src" / "loopml"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    injected = {
        "store/engine.py": "from loopml.serve import app as _upward\n",  # a lower layer imports a higher one
        "cli/models.py": "from loopml import registry as _around_the_door\n",  # the edge skips project
        "dashboard/page.py": "import sqlalchemy as _sql_at_the_edge\n",  # SQL at the edge
        "tasks/binary.py": "from loopml.tasks import regression as _sibling\n",  # half of a cycle ...
    }
    injected["tasks/regression.py"] = "from loopml.tasks import binary as _cycle\n"  # ... and its other half
    for name, line in injected.items():
        path = copy / name
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace(
                "from __future__ import annotations\n", f"from __future__ import annotations\n{line}", 1
            )
        )
    result = _lint_imports(copy.parent, tmp_path)
    out = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "Contracts: 0 kept, 4 broken." in out, out[-3000:]
    assert "loopml.store.engine -> loopml.serve" in out
    assert "loopml.cli.models -> loopml.registry" in out
    assert "loopml.dashboard.page -> sqlalchemy" in out
    assert "No cycles are allowed in loopml.tasks" in out


def _subpackages() -> list[str]:
    return sorted(
        "loopml." + ".".join(p.parent.relative_to(PACKAGE_DIR).parts)
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


TASK_NAMES = {str(kind) for kind in TaskKind}


def _task_name_comparisons(path: Path) -> list[int]:
    """Lines of ``x == "binary"``, ``"forecast" != y``, ``t in ("multiclass", ...)``: a branch on a
    task's name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        for operand in (node.left, *node.comparators):
            values = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
            if any(isinstance(v, ast.Constant) and v.value in TASK_NAMES for v in values):
                found.append(node.lineno)
                break
    return found


def test_no_module_outside_tasks_branches_on_a_task_name() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{line}"
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        if path.relative_to(PACKAGE_DIR).parts[0] != "tasks"
        for line in _task_name_comparisons(path)
    ]
    assert offenders == [], "behaviour that differs by task belongs on the Task object: " + ", ".join(
        offenders
    )


def test_the_task_name_check_finds_a_branch(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'if model.task == "forecast" or kind in ("ranking", "x"):\n    pass\n', encoding="utf-8"
    )
    assert _task_name_comparisons(sample) == [1, 1]


def _contract_layers() -> list[set[str]]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layers = next(c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers")["layers"]
    return [
        {m.strip().removeprefix("loopml.") for m in layer.replace(":", "|").split("|")} for layer in layers
    ]


def _diagram_layers() -> list[set[str]]:
    """The layers of the Mermaid diagram in docs/architecture.md, top to bottom: each arrow goes from
    one group of nodes (``a & b``) to the next."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    labels = {node: label for node, label in re.findall(r'^\s*(\w+)\["([^"]+)"\]', block, re.M)}
    names = {node: {n.strip().split(" ")[0] for n in label.split(",")} for node, label in labels.items()}
    chain: list[set[str]] = []
    for line in block.splitlines():
        if "-->" not in line:
            continue
        for group in (g.strip() for g in line.split("-->")):
            members = set().union(*(names[node.strip()] for node in group.split("&")))
            if not chain or chain[-1] != members:
                chain.append(members)
    return chain


def test_the_architecture_diagram_is_the_layers_contract() -> None:
    assert _diagram_layers() == _contract_layers()
