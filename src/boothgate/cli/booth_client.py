"""Post a photo exactly as Breeze DSLR Remote Pro does: the same multipart fields in the same order,
a curl-style boundary, `Expect: 100-continue` (headers first, body after the server's go-ahead).

Used by `boothgate send`, the tests and the benchmark. Plain sockets, so what goes on the wire is
exactly what is written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

CONTINUE_WAIT_SECONDS = 1.0  # like curl: if no 100 Continue comes, send the body anyway


@dataclass
class BoothAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    got_continue: bool = False
    after_last_byte: float = 0.0  # from the body's last byte leaving the booth to the whole answer

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> dict[str, object]:
        result: dict[str, object] = json.loads(self.body)
        return result


@dataclass
class BoothForm:
    """The text fields DSLR Remote Pro 3.30.2 sends, in its order (from the specification's sample)."""

    password: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def ordered(self) -> list[tuple[str, str]]:
        now = str(int(time.time()))
        base = {
            "time": now,
            "user_id": "Acer",
            "id": f"CY04N068111304S2L_{int(now) % 10**8:08d}.",
            "profile": r"C:\Users\Acer\Documents\PhotoboothImages\setup_Serg.xml",
            "status": r"C:\Users\Acer\Documents\PhotoboothImages\screenSerg\preview.jpg",
            "hash": hashlib.sha1(now.encode()).hexdigest(),
            "name": "DESKTOP-K968T3F",
            "model": "Windows",
            "version": "3.30.2",
        }
        base.update(self.fields)
        items = list(base.items())
        if self.password is not None:
            items.append(("password", self.password))
        return items


def build_multipart(
    photo: bytes | None,
    form: BoothForm,
    filename: str = "IMG_0003.JPG",
    file_field: str = "fileToUpload",
    content_type: str = "image/jpeg",
) -> tuple[bytes, str]:
    """The body and its Content-Type, with a boundary shaped like `------------090306000104030805010400`."""
    boundary = "------------" + "".join(secrets.choice("0123456789") for _ in range(24))
    parts = []
    for name, value in form.ordered():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    if photo is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
        )
        parts.append(photo)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if status == 100:
        return status, headers, b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.read()
    return status, headers, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readline()
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readline()


async def post_photo_async(
    url: str,
    photo: bytes,
    password: str | None = None,
    *,
    fields: dict[str, str] | None = None,
    filename: str = "IMG_0003.JPG",
    file_field: str = "fileToUpload",
    content_type: str = "image/jpeg",
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    expect_continue: bool = True,
    body: bytes | None = None,
    bytes_per_second: float | None = None,
    stop_after: int | None = None,
) -> BoothAnswer:
    """POST like the booth and wait for the answer (at most `timeout` seconds, like the booth's wait).

    `bytes_per_second` paces the body like a booth on a real network; `stop_after` sends only that many
    body bytes and then waits (a booth whose network dropped mid-upload)."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    if body is None:
        body, multipart_type = build_multipart(photo, BoothForm(password, fields or {}), filename, file_field,
                                               content_type)  # fmt: skip
    else:
        multipart_type = (headers or {}).get("Content-Type", "multipart/form-data; boundary=x")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request_headers = {
        "Host": parts.netloc,
        "Accept": "*/*",
        "Content-Length": str(len(body)),
        "Content-Type": multipart_type,
        **({"Expect": "100-continue"} if expect_continue else {}),
        **(headers or {}),
    }
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in request_headers.items()) + "\r\n"
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            parts.hostname, port, ssl=ssl.create_default_context() if tls else None
        )
        try:
            writer.write(head.encode("latin-1"))
            await writer.drain()
            got_continue = False
            if expect_continue:
                try:
                    async with asyncio.timeout(CONTINUE_WAIT_SECONDS):
                        status, answer_headers, answer_body = await _read_response(reader)
                    if status != 100:  # refused before the body (e.g. 413): the answer is final
                        return BoothAnswer(status, answer_headers, answer_body, time.monotonic() - started)
                    got_continue = True
                except TimeoutError:
                    pass
            last_byte = await _send_body(writer, body, bytes_per_second, stop_after)
            status, answer_headers, answer_body = await _read_response(reader)
            while status == 100:
                status, answer_headers, answer_body = await _read_response(reader)
            now = time.monotonic()
            return BoothAnswer(status, answer_headers, answer_body, now - started, got_continue, now - last_byte)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


PACE_CHUNK_BYTES = 64 * 1024


async def _send_body(
    writer: asyncio.StreamWriter, body: bytes, bytes_per_second: float | None, stop_after: int | None
) -> float:
    """Write the body (all at once, or paced); the instant its last byte was handed to the network."""
    end = len(body) if stop_after is None else min(stop_after, len(body))
    if not bytes_per_second:
        writer.write(body[:end])
        await writer.drain()
        return time.monotonic()
    begin = time.monotonic()
    for start in range(0, end, PACE_CHUNK_BYTES):
        await asyncio.sleep(max(0.0, begin + start / bytes_per_second - time.monotonic()))
        writer.write(body[start : min(end, start + PACE_CHUNK_BYTES)])
        await writer.drain()
    return time.monotonic()


def post_photo(url: str, photo: bytes, password: str | None = None, **kwargs: object) -> BoothAnswer:
    """Blocking form of `post_photo_async`."""
    return asyncio.run(post_photo_async(url, photo, password, **kwargs))  # type: ignore[arg-type]
