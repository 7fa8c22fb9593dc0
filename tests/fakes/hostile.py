"""A hostile Gemini-compatible service on loopback, for the hardening tests (issue 31).

It speaks Gemini's wire format (`POST /v1beta/models/{model}:generateContent`, `x-goog-api-key`) but its
answers are the attacks: malformed JSON of the right shape, compressed bombs, redirects to another origin.
Each answer is chosen per request by `mode` (set by the test); `Elsewhere` is the other origin a redirect
points to, recording what arrives there.
"""

from __future__ import annotations

import base64
import io
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def png(width: int = 96, height: int = 72, colour: tuple[int, int, int] = (30, 160, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def candidate(parts: Any, **extra: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}], **extra}


def image_answer(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    return candidate([{"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}])


def gzip_bomb(inflated_bytes: int, chunk: bytes = b" ") -> bytes:
    """`inflated_bytes` of whitespace (valid JSON padding) compressed with gzip: ~1/1000 of its size."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = chunk * (1 << 20)
    parts = []
    for _ in range(inflated_bytes // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.flush())
    return b"".join(parts)


@dataclass
class Hostile:
    mode: str = "image"
    redirect_to: str = ""
    inflated_bytes: int = 1 << 30
    received: list[dict[str, Any]] = field(default_factory=list)
    _bomb: dict[int, bytes] = field(default_factory=dict)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{version}/models/{target}", self._handle, methods=["POST"])])

    def bomb(self) -> bytes:
        if self.inflated_bytes not in self._bomb:
            self._bomb[self.inflated_bytes] = gzip_bomb(self.inflated_bytes)
        return self._bomb[self.inflated_bytes]

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self.received.append({"bytes": len(body), "key": request.headers.get("x-goog-api-key")})
        mode = self.mode
        if mode == "image":
            return JSONResponse(image_answer(png()))
        if mode == "bad_base64":
            return JSONResponse(candidate([{"inlineData": {"mimeType": "image/png", "data": "%%% not base64 ***"}}]))
        if mode == "number_as_text":
            return JSONResponse({**image_answer(png()), "usageMetadata": {"promptTokenCount": "a great many"}})
        if mode == "parts_not_list":
            return JSONResponse(candidate("a picture of a pirate"))
        if mode == "parts_of_numbers":
            return JSONResponse(candidate([1, 2, 3]))
        if mode == "candidates_not_list":
            return JSONResponse({"candidates": {"content": "nothing"}})
        if mode == "bad_enum":
            answer = image_answer(png())
            answer["candidates"][0]["content"]["role"] = {"who": ["knows"]}
            return JSONResponse(answer)
        if mode == "deep":
            deep = "[" * 200_000 + "]" * 200_000
            return Response(f'{{"candidates": {deep}}}', media_type="application/json")
        if mode == "gzip_bomb":
            return Response(self.bomb(), media_type="application/json", headers={"Content-Encoding": "gzip"})
        if mode in ("redirect_307", "redirect_308", "redirect_302"):
            status = int(mode.rsplit("_", 1)[1])
            target = f"{self.redirect_to}{request.url.path}?{request.url.query}"
            return Response(status_code=status, headers={"Location": target})
        raise ValueError(f"unknown hostile mode {mode!r}")


@dataclass
class Elsewhere:
    """Another origin: records every request that reaches it and answers an image (the attacker's)."""

    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT"])])

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self.received.append({"bytes": len(body), "headers": dict(request.headers)})
        return Response(json.dumps(image_answer(png(colour=(255, 0, 255)))), media_type="application/json")
