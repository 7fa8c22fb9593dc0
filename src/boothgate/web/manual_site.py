"""/help: the operator's manual — docs/ built by mkdocs-material into web/manual/ — served from local files.

Behind the admin's Basic Auth like every other page: the manual holds no secret, but a public copy would
tell scanners what runs on an internet-facing booth server, and the operator reading it is signed in.
The files are listed once (and again when a page is missing, e.g. after `make docs` on a running server),
so a request never touches a path it was not given by that listing. The build moves the theme's inline
scripts into files (scripts/mkdocs_hooks.py), so the pages run no inline code; should one remain (a
manual built without the hook), the page's Content-Security-Policy allows exactly it by hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import anyio.to_thread
from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from boothgate.web.deps import require_admin

MANUAL_DIR = Path(__file__).resolve().parent / "manual"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Manual not built · boothgate</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body><main id="main" class="manual-missing">
<h1>The manual has not been built on this machine</h1>
<p>Run <code>make docs</code> (or <code>make install</code>) in the boothgate folder, then reload this page.
The same pages are in the <code>docs/</code> folder of the project as plain Markdown files.</p>
<p lang="ru">Справка ещё не собрана: выполните <code>make docs</code> в папке boothgate и обновите страницу.
Те же страницы лежат в папке <code>docs/</code> проекта.</p>
<p><a href="/">← boothgate</a></p>
</main></body></html>
"""


class Manual:
    """The built site: its files by URL path, and the page policy that allows its inline scripts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[str, Path] = {}
        self.policy = ""
        self.scan()

    def scan(self) -> None:
        root = self.directory
        files = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
        hashes = sorted(
            {
                "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
                for name, path in files.items()
                if name.endswith(".html")
                for script in INLINE_SCRIPT.findall(path.read_bytes())
            }
        )
        self.files = files
        scripts = " ".join(["'self'", *hashes])
        self.policy = (
            f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        )

    @property
    def built(self) -> bool:
        return "index.html" in self.files

    def find(self, path: str) -> tuple[str, Path] | None:
        """The file for a URL path under /help/ (a folder's index.html), or None."""
        path = path.strip("/")
        for name in (path, f"{path}/index.html" if path else "index.html"):
            if name in self.files:
                return name, self.files[name]
        return None


def router(directory: Path | None = None) -> APIRouter:
    manual = Manual(directory or MANUAL_DIR)
    routes = APIRouter(dependencies=[Depends(require_admin)], include_in_schema=False)

    @routes.get("/help")
    async def help_root() -> Response:
        return RedirectResponse("/help/", status_code=308)

    @routes.get("/help/{path:path}")
    async def help_page(path: str) -> Response:
        found = manual.find(path)
        if found is None:
            await anyio.to_thread.run_sync(manual.scan)  # rebuilt since the start?
            found = manual.find(path)
        if found is None:
            if not manual.built:
                return HTMLResponse(NOT_BUILT, status_code=404)
            missing = manual.files.get("404.html")
            if missing is None:
                return HTMLResponse("Not found", status_code=404)
            return FileResponse(missing, status_code=404, headers={"content-security-policy": manual.policy})
        name, file = found
        if name.endswith("index.html") and path and not path.endswith("/") and not path.endswith(".html"):
            return RedirectResponse(f"/help/{path}/", status_code=308)  # the pages' relative links need the slash
        return FileResponse(file, headers={"content-security-policy": manual.policy, "cache-control": "no-cache"})

    return routes
