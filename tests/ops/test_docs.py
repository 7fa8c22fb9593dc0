"""The README stays true: every setting documented from its description, every make target named."""

from __future__ import annotations

import re
from pathlib import Path

from boothgate.settings import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_matches_the_code() -> None:
    text = README.read_text()
    block = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", text, re.S)
    assert block, "README lost its settings block"
    assert block.group(1) == settings_table(), "README settings are stale: run `make docs`"


def test_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text and "make test" in text
