"""How a bench booth posts: DSLR Remote Pro's request shape (see shared booth-protocol.md)."""

from __future__ import annotations

import time

import httpx


async def post_photo(
    client: httpx.AsyncClient,
    path: str,
    data: bytes,
    filename: str,
    mime: str,
    password: str,
    booth: int,
    number: int,
) -> httpx.Response:
    fields = {
        "time": str(int(time.time())),
        "user_id": f"booth{booth}",
        "id": f"CY04N0681113{booth:02d}S2L_{number:08d}.",
        "profile": r"C:\Users\Booth\Documents\PhotoboothImages\setup.xml",
        "status": r"C:\Users\Booth\Documents\PhotoboothImages\screen\preview.jpg",
        "hash": f"{booth:020d}{number:020d}",
        "name": f"BOOTH-{booth:03d}",
        "model": "Windows",
        "version": "3.30.2",
        "password": password,
    }
    return await client.post(
        path,
        data=fields,
        files={"fileToUpload": (filename, data, mime)},
        headers={"Expect": "100-continue"},
    )
