"""Every relative link of README.md and docs/ resolves: the file exists, and a #section is a heading there.

    python scripts/check_links.py          # run by `make lint`; exit 1 and one line per broken link

Anchors are made the way the manual's build makes them (pymdownx's slugify, as in mkdocs.yml), which is
also GitHub's rule for README.md: lower case, punctuation dropped, each space a hyphen, Cyrillic kept.
Links to other sites (http:, https:, mailto:) are not followed: the check runs offline.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

from pymdownx.slugs import slugify

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
SLUGIFY = slugify(case="lower")  # as mkdocs.yml configures the toc


def slug(heading: str) -> str:
    """The anchor of a heading: the manual's own slugify (mkdocs.yml), after the inline markup is dropped."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_]{1,2}([^*_]+)[*_]{1,2}", r"\1", text)
    return SLUGIFY(text, "-")


def prose(text: str) -> list[str]:
    """The lines outside code fences."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        lines.append("" if fenced or FENCE.match(line) else line)
    return lines


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in prose(path.read_text()):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            name, n = base, 1
            while name in found:  # a repeated heading gets _1, _2 … (Python-Markdown's rule)
                name, n = f"{base}_{n}", n + 1
            found.add(name)
    return found


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, line in enumerate(prose(path.read_text()), 1):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue
            where, _, section = unquote(target).partition("#")
            file = (path.parent / where).resolve() if where else path
            if not file.exists():
                problems.append(f"{path.relative_to(ROOT)}:{number}: {target}: no such file")
            elif section and file.suffix == ".md" and section not in anchors(file):
                problems.append(f"{path.relative_to(ROOT)}:{number}: {target}: no heading #{section} there")
    return problems


def main() -> int:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    problems = [problem for page in pages for problem in broken_links(page)]
    print("\n".join(problems) or f"links ok: {len(pages)} pages")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
