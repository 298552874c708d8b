"""The documentation: the generated references are current, the site builds strictly and offline, and
the README is a short front door whose links lead somewhere.

docs/config.md, docs/cli.md and the packaged JSON Schema are generated from the code; when a test
here fails because one is stale, its message is the command that regenerates it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from loopml.config import schema as config_schema
from loopml.config.reference import MINIMAL_EXAMPLE, sections
from loopml.config.reference import markdown as config_markdown

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Runs MkDocs with every outgoing connection and name lookup refused: the build must need no network
# (Material's fonts are off and no plugin fetches anything).
OFFLINE_MKDOCS = """
import socket, sys

def refuse(*args, **kwargs):
    raise OSError("the docs build tried to reach the network: " + repr(args[:2]))

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from mkdocs.__main__ import cli
sys.argv = ["mkdocs", *sys.argv[1:]]
cli()
"""


def _stale(path: Path, expected: str, command: str) -> None:
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    assert current == expected, f"{path.relative_to(ROOT)} is stale: regenerate it with `{command}`"


def test_the_config_reference_is_current() -> None:
    _stale(DOCS / "config.md", config_markdown(), "python -m loopml.config.reference docs/config.md")


def test_the_cli_reference_is_current() -> None:
    from loopml.cli.reference import markdown as cli_markdown

    _stale(DOCS / "cli.md", cli_markdown(), "python -m loopml.cli.reference docs/cli.md")


def test_the_packaged_schema_is_current() -> None:
    _stale(
        config_schema.PACKAGED_SCHEMA,
        config_schema.schema_text(),
        "loopml config schema -o src/loopml/config/loopml.schema.json",
    )


def test_every_key_of_the_project_file_is_documented() -> None:
    text = (DOCS / "config.md").read_text(encoding="utf-8")
    missing = [
        f"{section.path}.{name}"
        for section in sections()
        for name, field in section.model.model_fields.items()
        if not field.exclude and not field.description
    ]
    assert not missing, f"keys without a description= (the meaning column of docs/config.md): {missing}"
    for section in sections():
        heading = "## Top-level keys\n" if section.path == "(top level)" else f"## `{section.path}`\n"
        assert heading in text, f"docs/config.md has no section {heading.strip()}"
        table = text.split(heading, 1)[1].split("\n## ", 1)[0]
        for name, field in section.model.model_fields.items():
            if not field.exclude:
                assert f"| `{name}` |" in table, f"{section.path}.{name} is not in docs/config.md"


def test_the_config_reference_example_is_a_valid_project_file() -> None:
    from loopml.config import parse_settings

    settings = parse_settings(MINIMAL_EXAMPLE, environ={})
    assert (settings.name, settings.target, settings.id_column) == ("orders", "churned", "order_id")


def test_the_cli_reference_names_every_command() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for command in ("init", "ingest", "train", "serve", "predict", "models promote", "config schema"):
        assert f"## loopml {command}\n" in text


def test_the_site_builds_strictly_without_the_network(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, or a page left out of the nav, fails it."""
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_MKDOCS, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pages = {p.name for p in (tmp_path / "site").glob("*.html")}
    assert {"index.html", "config.html", "cli.html", "http-api.html", "architecture.html"} <= pages
    config_page = (tmp_path / "site" / "config.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in config_page


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    """The check above can fail: the same build over a copy of docs/ with one broken anchor."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in DOCS.glob("*.md"):
        (docs / page.name).write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    (docs / "data.md").write_text(
        (docs / "data.md").read_text(encoding="utf-8") + "\nSee [nowhere](config.md#no-such-key).\n",
        encoding="utf-8",
    )
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text(config, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_MKDOCS, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode != 0
    assert "no-such-key" in result.stderr


def test_the_readme_is_a_front_door_whose_links_lead_somewhere() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for command in ("pip install", "make demo", "make test", "loopml init", "--from", "loopml check"):
        assert command in text
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local, "the README links to no page of the docs"
    broken = [link for link in local if not (ROOT / link).exists()]
    assert not broken, f"README links to missing files: {broken}"
