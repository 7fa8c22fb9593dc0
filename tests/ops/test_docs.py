"""The README and the manual stay true: every setting documented from its description, the README short
with the two commands, and every relative link of README.md and docs/ resolving."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from boothgate.settings import settings_table

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAKEFILE = ROOT / "Makefile"
SETTINGS_PAGE = ROOT / "docs" / "settings.md"


def _check_links() -> object:
    spec = importlib.util.spec_from_file_location("check_links", ROOT / "scripts" / "check_links.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_table_matches_the_code() -> None:
    text = SETTINGS_PAGE.read_text()
    block = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", text, re.S)
    assert block, "docs/settings.md lost its settings block"
    assert block.group(1) == settings_table(), "docs/settings.md is stale: run `make docs`"


def test_readme_is_short_and_names_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250, "README.md is for a first read: move the detail into docs/"
    named = set(re.findall(r"`make ([a-z][a-z-]*)[ `]|^make ([a-z][a-z-]*)\b", text, re.M))
    commands = {a or b for a, b in named}
    assert {"run", "test"} <= commands, f"README names the two commands as commands: {sorted(commands)}"
    targets = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE.read_text(), re.M))
    assert commands <= targets, f"README names make targets the Makefile lacks: {sorted(commands - targets)}"
    assert "](docs/settings.md)" in text, "README links to the settings table"
    assert "](docs/ru/index.md)" in text, "README links to the Russian quick start"


def test_every_relative_link_resolves() -> None:
    checker = _check_links()
    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    problems = [problem for page in pages for problem in checker.broken_links(page)]  # type: ignore[attr-defined]
    assert not problems, "\n".join(problems)
