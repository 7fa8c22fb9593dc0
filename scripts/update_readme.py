"""Rewrite the README's settings table from the settings' descriptions (`make docs`)."""

import re
from pathlib import Path

from boothgate.settings import settings_table

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
block = f"<!-- settings:start -->\n{settings_table()}\n<!-- settings:end -->"
readme.write_text(re.sub(r"<!-- settings:start -->\n.*?<!-- settings:end -->", lambda _: block, text, flags=re.S))
