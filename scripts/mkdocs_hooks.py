"""mkdocs hooks for the manual served at /help: no inline script in any built page.

The theme writes two small inline scripts into every page; the server's pages promise a Content-Security-Policy
of `script-src 'self'` (no inline code at all), so each inline script body is written once to
`assets/inline/<sha256>.js` and the page loads it from there, in the same place and order.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

INLINE = re.compile(r"<script>(.*?)</script>", re.S)
_bodies: dict[str, str] = {}


def _externalise(output: str, prefix: str) -> str:
    def external(match: re.Match[str]) -> str:
        body = match.group(1)
        name = hashlib.sha256(body.encode()).hexdigest()[:16] + ".js"
        _bodies[name] = body
        return f'<script src="{prefix}assets/inline/{name}"></script>'

    return INLINE.sub(external, output)


def on_post_page(output: str, page: Any, config: Any) -> str:
    depth = page.url.count("/") if page.url else 0
    return _externalise(output, "../" * depth)


def on_post_template(output: str, template_name: str, config: Any) -> str:
    """The 404 page is served for any missing path under /help/, so its links are absolute: under /help/."""
    if template_name != "404.html":
        return output
    output = re.sub(r'(\b(?:href|src)=")/(?!/)', r"\1/help/", output)
    output = output.replace('new URL("/",location)', 'new URL("/help/",location)')
    return _externalise(output, "/help/")


def on_post_build(config: Any) -> None:
    folder = Path(config["site_dir"]) / "assets" / "inline"
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in _bodies.items():
        (folder / name).write_text(body)
