"""Network faults in front of any wire-format fake: a raw TCP gate on loopback.

The real provider modules (and their SDKs) talk to the gate as if it were the service; the gate forwards
each HTTP/1.1 request to the fake behind it on a fresh connection, unless the request carries a fault
marker, `fault-<mode>-fault`, anywhere in its head or body (the slot's prompt is the natural carrier: every
provider sends it verbatim — JSON, multipart or url-encoded, the marker survives all three). A marker may
name its gate, `fault-<mode>-for-<gate>-fault` (letters and hyphens: url-encoding keeps them); then only the
gate of that name acts on it and the others pass the request on (DeepSeek hands the slot's prompt, marker
included, to its Gemini renderer when its own call fails; the renderer's gate must not take a fault meant
for DeepSeek's). Then the gate does to that request what bad networks and overloaded services do, which an
ASGI app cannot:

- `reset`: a TCP RST after reading the request (SO_LINGER 0),
- `stall`: read the request, never answer, hold the connection open,
- `truncated`: the fake's real answer, its head promising the whole body, half the body, then close,
- `html`: a proxy's `502 Bad Gateway` HTML page instead of the service's JSON,
- `drip`: the fake's real answer, its body a byte at a time spread over `DRIP_SECONDS` (at least 0.1 s a
  byte): a connection that is alive but useless for longer than any deadline the tests use, however short
  the answer (Turbotext's `{"success":true,"queueid":N}` is 30 bytes: at 0.1 s a byte it came in time).

Every request is also recorded (`seen`: the fault applied, or "pass"), so a test proves the fault happened on
the wire. One gate per fake, shared by a module; the marker makes faults per slot, so a burst mixes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from collections.abc import Iterator

FAULTS = ("reset", "stall", "truncated", "html", "drip")
_MARK = re.compile(rb"fault-(" + b"|".join(f.encode() for f in FAULTS) + rb")(?:-for-([a-z]+))?-fault")
DRIP_SECONDS = 20.0
HTML_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    b"<hr><center>nginx</center></body></html>"
)


def marker(fault: str, at: str | None = None) -> str:
    """The text to put in a prompt to have a gate apply `fault` to the request carrying it: every gate,
    or only the gate named `at`."""
    assert fault in FAULTS, fault
    return f"fault-{fault}-for-{at}-fault" if at else f"fault-{fault}-fault"


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 message: (head incl. the blank line, body), Content-Length or chunked."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        head = _set_header(_drop_header(head, "transfer-encoding"), "Content-Length", str(len(body)))
        return head, body
    return head, await reader.readexactly(int(headers.get("content-length", "0")))


def _drop_header(head: bytes, name: str) -> bytes:
    lines = head.split(b"\r\n")
    kept = [line for line in lines[1:] if not line.lower().startswith(name.lower().encode() + b":")]
    return b"\r\n".join([lines[0], *kept])


def _set_header(head: bytes, name: str, value: str) -> bytes:
    head = _drop_header(head, name)
    return head[: -len(b"\r\n\r\n")] + f"\r\n{name}: {value}\r\n\r\n".encode()


class FaultGate:
    def __init__(self, upstream: str, name: str = "") -> None:
        self.name = name
        host_port = upstream.removeprefix("http://").split("/", 1)[0]
        self.upstream_host, _, port = host_port.partition(":")
        self.upstream_port = int(port)
        self.seen: list[str] = []
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.seen.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head, body = await _read_message(reader)
            fault = self._fault_in(head + body)
            self.seen.append(fault)
            await self._answer(fault, head, body, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _fault_in(self, message: bytes) -> str:
        for found in _MARK.finditer(message):
            target = found.group(2)
            if target is None or target.decode() == self.name:
                return found.group(1).decode()
        return "pass"

    async def _upstream(self, head: bytes, body: bytes) -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        try:
            writer.write(_set_header(head, "Connection", "close") + body)
            await writer.drain()
            return await _read_message(reader)
        finally:
            writer.close()

    async def _answer(
        self, fault: str, head: bytes, body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if fault == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if fault == "stall":
            await reader.read()  # until the client gives up and closes
            return
        if fault == "html":
            writer.write(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
                + f"Content-Length: {len(HTML_PAGE)}\r\nConnection: close\r\n\r\n".encode()
                + HTML_PAGE
            )
            await writer.drain()
            return
        answer_head, answer_body = await self._upstream(head, body)
        answer_head = _set_header(answer_head, "Connection", "close")
        if fault == "truncated":
            writer.write(answer_head + answer_body[: max(1, len(answer_body) // 2)])
            await writer.drain()
            return
        if fault == "drip":
            writer.write(answer_head)
            interval = max(0.1, DRIP_SECONDS / max(1, len(answer_body)))
            for i in range(len(answer_body)):
                writer.write(answer_body[i : i + 1])
                await writer.drain()
                if writer.is_closing():
                    return
                await asyncio.sleep(interval)
            return
        writer.write(answer_head + answer_body)
        await writer.drain()


@contextlib.contextmanager
def fault_gate(upstream: str, name: str = "") -> Iterator[FaultGate]:
    """Run a FaultGate named `name` in front of `upstream` (a fake's base URL) for the duration of the block."""
    gate = FaultGate(upstream, name)
    started = threading.Event()
    stop: dict[str, asyncio.Event] = {}

    async def main() -> None:
        stop["event"] = asyncio.Event()
        server = await asyncio.start_server(gate._handle, "127.0.0.1", 0)
        gate.port = server.sockets[0].getsockname()[1]
        gate.loop = asyncio.get_running_loop()
        started.set()
        async with server:
            await stop["event"].wait()
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("fault gate did not start")
    try:
        yield gate
    finally:
        assert gate.loop is not None
        gate.loop.call_soon_threadsafe(stop["event"].set)
        thread.join(timeout=5)
