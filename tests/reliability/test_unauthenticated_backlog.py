"""Password-less uploads share one memory budget; over it the answer is 429 `unauthenticated_backlog`
(docs/security.md, "Disk filled by strangers": "one budget of 96 MB for all such requests").

Three strangers (each its own forwarded address, so the password throttle stays out of it) send 30 MB of a
photo without any password and keep their uploads open: 90 MB held. A fourth stranger's photo does not fit
and is refused at once with the budget's own code, while a booth that sends the password first — the real
Gemini module against its wire fake — still gets its print. Once the three give up, the budget is free
again: the next stranger is only told its password is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from boothgate.booth.strangers import UNPROVEN_MEMORY_BYTES
from tests.bad_inputs import BOUNDARY, MULTIPART
from tests.conftest import Tab, make_jpeg
from tests.reliability.test_strangers import _file_head, _hostile

MB = 1024 * 1024
HELD = 30 * MB  # per stranger: three fit in the 96 MB budget, a fourth does not
PIECE = b"\xff\xd8\xff" + b"\x5a" * (256 * 1024 - 3)


async def _held_open(port: int, address: str, release: asyncio.Event) -> None:
    """Send HELD bytes of a photo with no password, promise more, and keep the connection until `release`."""
    head = _file_head(password=None)
    total = len(head) + HELD + 10 * MB  # the body the server is told to expect never ends in time
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST /booth/gemini/1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {address}\r\n"
            f"Content-Type: {MULTIPART['Content-Type']}\r\nContent-Length: {total}\r\n\r\n".encode()
            + head
        )
        for _ in range(HELD // len(PIECE)):
            writer.write(PIECE)
            await writer.drain()
        await release.wait()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _until(condition: Any, timeout: float, what: str) -> None:
    limit = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < limit, what
        await asyncio.sleep(0.05)


async def test_password_less_uploads_over_the_budget_get_429_unauthenticated_backlog(tab_factory: Any) -> None:
    tab: Tab = tab_factory("gemini", deadline_seconds=40.0, max_upload_bytes=64 * MB, upload_idle_timeout_seconds=30.0)
    booth = tab.booth
    await booth.configure("gemini", 1, prompt="as pirates")
    port = int(booth.url.rsplit(":", 1)[1])
    strangers = booth.services.ingest.strangers
    assert 3 * HELD <= UNPROVEN_MEMORY_BYTES < 4 * HELD, "the figures of this test fit the documented budget"

    release = asyncio.Event()
    held = [asyncio.create_task(_held_open(port, f"198.51.100.{i + 1}", release)) for i in range(3)]
    try:
        # Waiting for the server to have taken the three photos in (what it holds is the only sign of it).
        await _until(lambda: strangers.held_bytes >= 3 * HELD, 60, "the three strangers' bytes were held")
        status, body = await _hostile(port, "198.51.100.9", _file_head(password=None), 8 * MB)
        assert status == 429, body
        assert body["error"] == "unauthenticated_backlog", body
        served = await booth.post("gemini", 1, make_jpeg(320, 240, seed=41))
        assert served.status == 200, "a booth with the password is not held up by the strangers"
        assert tab.fake.received, "and its photo went to the provider"
    finally:
        release.set()
        await asyncio.gather(*held, return_exceptions=True)

    await _until(lambda: strangers.held_bytes == 0, 30, "what the strangers held was let go")
    end = f"\r\n--{BOUNDARY}--\r\n".encode()  # a whole form this time, only without the password
    status, body = await _hostile(port, "198.51.100.10", _file_head(password=None), 1 * MB, end)
    assert (status, body["error"]) == (401, "unauthorized"), body
    print(json.dumps({"refused": "unauthenticated_backlog", "budget_mb": UNPROVEN_MEMORY_BYTES // MB}))
