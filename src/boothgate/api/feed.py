"""A stored photo replayed to the spine as the body a booth would send (multipart, `fileToUpload`)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

CHUNK = 256 * 1024


def _quoted(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable() and ch not in '"\\\r\n')[:200]


def multipart(path: Path, filename: str, fields: dict[str, str]) -> tuple[str, int, AsyncIterator[bytes]]:
    """(content type, length, body) of a multipart form with `fields` and the file at `path`."""
    boundary = f"----boothgate-api-{secrets.token_hex(12)}"
    head = b"".join(
        (f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n').encode()
        + value.encode()
        + b"\r\n"
        for name, value in fields.items()
    )
    head += (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="fileToUpload"; filename="{_quoted(filename) or "photo"}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size

    async def body() -> AsyncIterator[bytes]:
        yield head
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)
        yield tail

    return f"multipart/form-data; boundary={boundary}", len(head) + size + len(tail), body()
