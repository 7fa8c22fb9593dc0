"""Rewrite the manual's settings table (docs/settings.md) from the settings' descriptions (`make docs`)."""

import re
from pathlib import Path

from boothgate.settings import settings_table

page = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
text = page.read_text()
block = f"<!-- settings:start -->\n{settings_table()}\n<!-- settings:end -->"
page.write_text(re.sub(r"<!-- settings:start -->\n.*?<!-- settings:end -->", lambda _: block, text, flags=re.S))
