"""The Caddy recipe (deploy/caddy/Caddyfile) in front of boothgate, with Debian's caddy and its internal CA
on loopback: a booth posts through HTTPS, Turbotext downloads the photo from an https media link, and
the UI's upload links show the public https address."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from boothgate.cli.booth_client import post_photo
from boothgate.providers.turbotext import TurbotextProvider
from boothgate.web.app import create_app
from tests.conftest import ADMIN, UPLOAD_PASSWORD, booth_settings, make_jpeg
from tests.fakes.server import free_port, serve
from tests.fakes.turbotext import FakeTurbotext

RECIPE = Path(__file__).parents[2] / "deploy" / "caddy" / "Caddyfile"
CADDY = shutil.which("caddy")

pytestmark = pytest.mark.skipif(
    CADDY is None, reason="Debian's caddy is not installed (scripts/install-test-system-deps.sh installs it)"
)


class TrustingTurbotext(FakeTurbotext):
    """The Turbotext fake, trusting Caddy's internal CA as the real service trusts a public one."""

    ca_file: str = ""

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        context = ssl.create_default_context(cafile=self.ca_file)
        async with httpx.AsyncClient(timeout=5, verify=context) as client:
            self._client = client
            yield


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Caddy running the recipe (imported unchanged) on free loopback ports, certificates from its own CA."""
    https_port, http_port, upstream = free_port(), free_port(), free_port()
    home = tmp_path / "caddy"
    home.mkdir()
    config = home / "Caddyfile"
    config.write_text(
        "{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n"
        f"\thttp_port {http_port}\n\thttps_port {https_port}\n\tstorage file_system {home / 'storage'}\n}}\n"
        f"import {RECIPE}\n"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "BOOTHGATE_PUBLIC_NAME": "localhost",
        "BOOTHGATE_UPSTREAM": f"127.0.0.1:{upstream}",
    }
    log = (home / "caddy.log").open("wb")
    assert CADDY is not None
    process = subprocess.Popen(
        [CADDY, "run", "--config", str(config), "--adapter", "caddyfile"], env=env, stdout=log, stderr=log
    )
    root = home / "storage" / "pki" / "authorities" / "local" / "root.crt"
    try:
        started = time.monotonic()
        while not root.exists():
            assert process.poll() is None, (home / "caddy.log").read_text()[-2000:]
            assert time.monotonic() - started < 30, "caddy did not create its CA"
            time.sleep(0.1)
        yield {
            "https": f"https://localhost:{https_port}",
            "http_port": http_port,
            "upstream": upstream,
            "ca": str(root),
        }
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _wait_for_https(url: str, ca: str) -> httpx.Response:
    """The internal certificate is issued a moment after start; until then the handshake fails."""
    started = time.monotonic()
    while True:
        try:
            return httpx.get(f"{url}/health", verify=ssl.create_default_context(cafile=ca), timeout=5)
        except httpx.HTTPError:
            if time.monotonic() - started > 30:
                raise
            time.sleep(0.2)


def test_booth_post_and_turbotext_media_links_through_caddy_https(
    tmp_path: Path, caddy: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    public = caddy["https"]
    fake = TrustingTurbotext()
    fake.ca_file = caddy["ca"]
    with serve(fake.app) as fake_url:
        settings = booth_settings(
            tmp_path,
            public_base_url=public,
            turbotext_api_key="tt-test-key",
            turbotext_base_url=f"{fake_url}/api_ai",
            turbotext_poll_interval_seconds=0.05,
            deadline_seconds=8.0,
        )
        with serve(create_app(settings, {"turbotext": TurbotextProvider}), port=caddy["upstream"]):
            health = _wait_for_https(public, caddy["ca"])
            assert health.status_code == 200 and health.json()["database"] is True
            verify = ssl.create_default_context(cafile=caddy["ca"])
            with httpx.Client(base_url=public, auth=ADMIN, verify=verify) as admin:
                put = admin.put(
                    "/api/slots/turbotext/2", json={"enabled": True, "kind": "prompt", "prompt": "neon city"}
                )
                assert put.status_code == 200, put.text
                slot = (admin.get("/api/slots/turbotext/2")).json()
                assert slot["upload_url"] == f"{public}/booth/turbotext/2"
                page = admin.get("/tabs/turbotext/2")
                assert f"{public}/booth/turbotext/2" in page.text

            # the booth program posts through HTTPS (trusting the CA the way an installed root would be)
            monkeypatch.setenv("SSL_CERT_FILE", caddy["ca"])
            answer = post_photo(f"{public}/booth/turbotext/2", make_jpeg(640, 480, seed=3), UPLOAD_PASSWORD, timeout=20)
    assert answer.status == 200, answer.body[:300]
    assert answer.content_type == "image/jpeg"
    [create] = fake.calls("create_queue")
    photo_link = create.form["url"]
    assert photo_link.startswith(f"{public}/media/"), photo_link
    fetched = [f for f in fake.fetches if f.url == photo_link]
    assert fetched and fetched[0].status == 200 and fetched[0].data[:2] == b"\xff\xd8"
    # plain http on the public name is redirected to https by the recipe
    redirect = httpx.get(f"http://localhost:{caddy['http_port']}/booth/turbotext/2", follow_redirects=False)
    assert redirect.status_code in (301, 308) and redirect.headers["location"].startswith("https://localhost")
