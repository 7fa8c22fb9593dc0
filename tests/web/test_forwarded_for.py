"""`X-Forwarded-For` is believed only from 127.0.0.1 (docs/security.md, "Run that proxy on the same host").

The server runs as `boothgate serve` runs it (`uvicorn_options`), the Gemini tab's real module against its
wire fake. A client on another loopback address (127.0.0.2: Linux routes all of 127/8 on `lo`) sends a
forged `X-Forwarded-For`, a new address each time, as a stranger rotating addresses would; the password
throttle counts the real peer, so two wrong passwords lock 127.0.0.2 out whatever the header says. The
same rotation from 127.0.0.1 (the local proxy) is believed: each forwarded address is its own client.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from boothgate.web.app import create_app
from boothgate.web.server import uvicorn_options
from tests.bad_inputs import MULTIPART, booth_form, exchange
from tests.conftest import Booth, booth_settings, make_jpeg, start_fakes
from tests.fakes.server import free_port, serve

STRANGER = "127.0.0.2"  # not the trusted proxy address


@pytest.fixture
def booth(tmp_path: Path) -> Iterator[Booth]:
    try:
        with socket.socket() as probe:
            probe.bind((STRANGER, 0))
    except OSError:
        pytest.skip(f"{STRANGER} is not a local address here (Linux routes all of 127/8 on lo; macOS does not)")
    with ExitStack() as stack:
        _, _, _, _, values = start_fakes("gemini", stack)
        settings = booth_settings(tmp_path, deadline_seconds=8.0, auth_max_failures=2, **values)
        app = create_app(settings, {})  # the built-in provider modules
        url = stack.enter_context(serve(app, port=free_port(), **uvicorn_options(settings)))
        yield Booth(url, settings, app)


def _port(booth: Booth) -> int:
    return int(booth.url.rsplit(":", 1)[1])


async def _post(booth: Booth, password: bytes, forwarded: str, source: str | None, seed: int) -> int:
    body = booth_form(make_jpeg(96, 72, seed=seed), password=password)
    headers = {**MULTIPART, "X-Forwarded-For": forwarded}
    answer = await exchange(_port(booth), "/booth/gemini/1", body, headers, local_address=source)
    return answer.status


async def test_a_forged_forwarded_for_from_another_address_is_not_believed(booth: Booth) -> None:
    await booth.configure("gemini", 1, prompt="as pirates")
    right = booth.upload_password.encode()
    # From the trusted proxy address: each forwarded address is a client of its own, one slip each.
    assert await _post(booth, b"wrong", "203.0.113.1", None, 1) == 401
    assert await _post(booth, b"wrong", "203.0.113.2", None, 2) == 401
    assert await _post(booth, right, "203.0.113.3", None, 3) == 200, "forwarded addresses from 127.0.0.1 must count"
    # From 127.0.0.2 the same rotation is one client, the real peer: two slips lock it out.
    assert await _post(booth, b"wrong", "203.0.113.11", STRANGER, 11) == 401
    assert await _post(booth, b"wrong", "203.0.113.12", STRANGER, 12) == 401
    locked = await _post(booth, right, "203.0.113.13", STRANGER, 13)
    assert locked == 429, "a forged header from 127.0.0.2 was believed: the rotation escaped the lockout"
    # The lockout is the peer's own: the proxy's booths still get their prints.
    assert await _post(booth, right, "203.0.113.14", None, 14) == 200
