"""Every byte held for an unproven request counts (issue 31, class 10): ordinary form fields of requests
without the upload password count against the same memory budget as their photo bytes. Forty
password-less requests with large fields, held open, leave the server's Python memory within the budget.

The clients run in a subprocess: tracemalloc sees the whole test process, and the server (uvicorn in a
thread) is what is measured, not the clients' socket buffers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from boothgate.booth.strangers import UNPROVEN_MEMORY_BYTES
from boothgate.cli.booth_client import _read_response
from tests.bad_inputs import BOUNDARY, MULTIPART
from tests.conftest import Booth, make_jpeg

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]
# Python memory the server may hold beyond the budget: per connection, uvicorn's body buffer (at most
# 64 KB + one 256 KB socket read) and the chunk handed to us; field values' object headers.
SLACK = 16 * MB


def _fields(count: int, size: int, seed: int) -> bytes:
    parts = []
    for i in range(count):
        value = (f"{seed:04d}{i:04d}" * (size // 8 + 1))[:size].encode()
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note{i}"\r\n\r\n'.encode() + value + b"\r\n"
        )
    return b"".join(parts)


async def _held_open(port: int, body: bytes, address: str, hold: float) -> int:
    """Send the form's fields (no password, no end), keep the connection open; the answer's status or 0."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    total = len(body) + 10 * MB  # the body the server is told to expect never ends in time
    head = (
        f"POST /booth/gemini/1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {address}\r\n"
        f"Content-Type: {MULTIPART['Content-Type']}\r\nContent-Length: {total}\r\n\r\n"
    )
    try:
        writer.write(head.encode())
        for start in range(0, len(body), 256 * 1024):
            writer.write(body[start : start + 256 * 1024])
            await writer.drain()
        status, _, _ = await asyncio.wait_for(_read_response(reader), hold)
        return status
    except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
        return 0
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _clients(port: int) -> list[int]:
    """Forty password-less requests, each from its own address, ~6 MB of fields each (240 MB in all)."""
    bodies = [_fields(100, 60_000, seed) for seed in range(40)]
    return list(
        await asyncio.gather(*(_held_open(port, body, f"198.51.100.{i + 1}", 8.0) for i, body in enumerate(bodies)))
    )


async def _clients_elsewhere(port: int) -> list[int]:
    """`_clients` in a subprocess; their statuses."""
    code = (
        "import asyncio, json; from tests.booth.test_stranger_fields import _clients; "
        f"print(json.dumps(asyncio.run(_clients({port}))))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, "the clients ran"
    return [int(s) for s in json.loads(out.decode().strip().splitlines()[-1])]


async def test_forty_passwordless_requests_with_large_fields_stay_inside_the_budget(booth_factory: Any) -> None:
    booth: Booth = booth_factory(upload_idle_timeout_seconds=4.0, auth_max_failures=1000, max_upload_bytes=64 * MB)
    await booth.configure("gemini", 1, prompt="x")
    port = int(booth.url.rsplit(":", 1)[1])
    tracemalloc.start()
    try:
        idle, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        statuses = await _clients_elsewhere(port)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    held = booth.services.ingest.strangers.held_bytes
    print(f"peak {(peak - idle) / MB:.0f} MB over idle; statuses {sorted(statuses)}")
    assert 429 in statuses, "requests past the budget are refused at once"
    assert peak - idle < UNPROVEN_MEMORY_BYTES + SLACK, f"{(peak - idle) / MB:.0f} MB held"
    assert held == 0, "everything held is let go"
    assert (await booth.post("gemini", 1, make_jpeg(64, 48, seed=3))).status == 200
