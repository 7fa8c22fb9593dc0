"""A misbehaving provider on a real loopback socket, and a provider that talks to it over httpx.

`WireFake` is a raw asyncio TCP server (not an ASGI app) so it can do what real networks do and
frameworks will not: reset the connection, close without answering, send bytes that are not HTTP,
promise a body it never sends, or stall forever. The mode is the last path segment of the request
(`POST /v1/<mode>`), so one fake serves every slot.

`WireProvider` is what a real provider module looks like from the spine's side: it posts the prepared
photo with the shared httpx client, bounded by the deadline, and reads a JSON answer. With
`guarded=True` it wraps the call in `providers.transport.provider_call`; with `guarded=False` errors
escape raw, to prove the spine's safety net.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from boothgate.providers.base import Provider, ProviderRequest, ProviderResult
from boothgate.providers.transport import provider_call

MODES = (
    "ok",  # 200 with {"image": base64 of the photo it received}
    "reset",  # TCP RST after reading the request
    "close",  # close without a response
    "garbage",  # bytes that are not HTTP, then close
    "truncated",  # 200 promising 100 000 bytes, sending 20, then close
    "stall",  # read the request, never answer
    "html",  # 200 text/html error page instead of JSON
    "bad_image",  # 200 JSON whose image is not an image
    "http_500",  # 500 with a JSON error
    "http_429",  # 429 quota
    "http_401",  # 401 bad key
)


@dataclass
class Received:
    mode: str
    body_bytes: int


class WireFake:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            mode = request_line.split()[1].rstrip("/").rsplit("/", 1)[-1]
            self.received.append(Received(mode, len(body)))
            await self._answer(mode, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, mode: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        if mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        elif mode == "close":
            writer.close()
        elif mode == "garbage":
            writer.write(b"\x00\xffNOT HTTP AT ALL\r\n\x13\x37" * 20)
        elif mode == "truncated":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            writer.write(b'{"image": "/9j/4AAQSk')
        elif mode == "stall":
            await asyncio.sleep(3600)
        elif mode == "html":
            writer.write(_response(200, b"<html><body>502 Bad Gateway</body></html>", "text/html"))
        elif mode == "bad_image":
            writer.write(_response(200, json.dumps({"image": base64.b64encode(b"not an image").decode()}).encode()))
        elif mode.startswith("http_"):
            status = int(mode.removeprefix("http_"))
            writer.write(_response(status, json.dumps({"error": {"message": "fake failure"}}).encode()))
        else:
            writer.write(_response(200, json.dumps({"image": base64.b64encode(body).decode()}).encode()))
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def _serve(self, started: threading.Event, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.loop = asyncio.get_running_loop()
        self._stop = stop
        started.set()
        async with server:
            await stop.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@contextlib.contextmanager
def wire_fake() -> Iterator[WireFake]:
    """Run a WireFake in a thread for the duration of the block."""
    fake = WireFake()
    started = threading.Event()
    holder: dict[str, asyncio.Event] = {}

    async def main() -> None:
        holder["stop"] = asyncio.Event()
        await fake._serve(started, holder["stop"])

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("wire fake did not start")
    try:
        yield fake
    finally:
        assert fake.loop is not None
        fake.loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(timeout=5)


class WireOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str = Field("ok", description="What the fake does: " + ", ".join(MODES))
    guarded: bool = Field(True, description="Wrap the call in provider_call (False: let errors escape raw).")


class WireProvider(Provider):
    """Posts the photo to the WireFake at `base_url` (set by the test) and reads {"image": base64}."""

    name = "wire"
    label = "Wire test provider"
    Options = WireOptions
    base_url: ClassVar[str] = ""

    async def run(self, request: ProviderRequest) -> ProviderResult:
        options = request.options
        assert isinstance(options, WireOptions)
        if not options.guarded:
            return await self._call(request, options.mode)
        with provider_call(self.label, request.deadline):
            return await self._call(request, options.mode)

    async def _call(self, request: ProviderRequest, mode: str) -> ProviderResult:
        response = await self.context.http.post(
            f"{self.base_url}/v1/{mode}",
            content=request.photo.data,
            headers={"Content-Type": request.photo.mime},
            timeout=request.deadline.remaining(),
        )
        response.raise_for_status()
        image = base64.b64decode(response.json()["image"])
        return ProviderResult(image, request.photo.mime, {"model": "wire", "cost_usd": 0.0})
