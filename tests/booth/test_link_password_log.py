"""A password in the upload link reaches no log line: the real `boothgate serve`, access log on.

uvicorn's access log prints each request's path with its query, so `?password=...` would land in the
log verbatim. The server runs as the operator runs it (a subprocess, uvicorn's own logging set-up),
the Gemini tab pointed at the loopback fake, and everything it wrote is searched afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from boothgate.cli.booth_client import post_photo_async
from tests.conftest import ADMIN, make_jpeg
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import free_port, serve
from tests.waits import eventually

REPO = Path(__file__).resolve().parents[2]
GEMINI_KEY = "AIzaSy-link-log-test-key-0123456789"
PASSWORD = "Link-Pass-7Hq2x"  # the real upload password, in the link
WRONG = "typo-pass-4kd8"  # a wrong one: no known secret, still never to be written down


@pytest.fixture
def gemini() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=GEMINI_KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def server(tmp_path: Path, gemini: tuple[GeminiFake, str]) -> Iterator[tuple[str, Path, Path]]:
    port = free_port()
    data_dir, log_path = tmp_path / "data", tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTHGATE_")}
    env.update(
        PYTHONPATH=str(REPO),
        BOOTHGATE_DATA_DIR=str(data_dir),
        BOOTHGATE_ADMIN_PASSWORD=ADMIN[1],
        BOOTHGATE_UPLOAD_PASSWORD=PASSWORD,
        BOOTHGATE_GEMINI_API_KEY=GEMINI_KEY,
        BOOTHGATE_GEMINI_BASE_URL=gemini[1],
        BOOTHGATE_ACCESS_LOG="true",
        BOOTHGATE_AUTH_MAX_FAILURES="2",
    )
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "boothgate", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        until = time.monotonic() + 30
        while time.monotonic() < until:
            assert process.poll() is None, log_path.read_text()[-2000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("boothgate serve did not come up")
        yield url, data_dir, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


async def test_password_in_the_link_is_in_no_log_record_sidecar_or_api(server: tuple[str, Path, Path]) -> None:
    url, data_dir, log_path = server
    async with httpx.AsyncClient(base_url=url, auth=ADMIN, timeout=10) as api:
        put = await api.put("/api/slots/gemini/1", json={"enabled": True, "prompt": "a {style} portrait"})
        assert put.status_code == 200

        good = await post_photo_async(f"{url}/booth/gemini/1?password={PASSWORD}&style=noir", make_jpeg(seed=1))
        wrong = [await post_photo_async(f"{url}/booth/gemini/1?key={WRONG}", make_jpeg(seed=2 + n)) for n in range(3)]
        jobs = (await api.get("/api/jobs")).text

    assert good.status == 200, good.body[:300]
    assert [a.status for a in wrong] == [401, 401, 429], "wrong passwords from the link count for the throttle"
    # the server's last log lines: wait for the access line of the last request, not for a fixed time
    await eventually(lambda: log_path.read_text().count("POST /booth/gemini/1?key=***") >= 3, "the last access line")
    log = log_path.read_text()
    assert "POST /booth/gemini/1?password=***&style=noir" in log, "the access line is written, masked"
    assert "POST /booth/gemini/1?key=***" in log
    stored = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())  # db, WAL, media, sidecars
    sidecars = [json.loads(p.read_text()) for p in (data_dir / "trash").rglob("*.json")]
    assert len(sidecars) == 3
    for secret in (PASSWORD, WRONG):
        assert secret not in log
        assert secret.encode() not in stored
        assert secret not in jobs
        assert all(secret not in json.dumps(s) for s in sidecars)
