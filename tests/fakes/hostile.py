"""A hostile Gemini-compatible service on loopback, for the hardening tests (issue 31).

It speaks Gemini's wire format (`POST /v1beta/models/{model}:generateContent`, `x-goog-api-key`) but its
answers are the attacks: malformed JSON of the right shape, compressed bombs, redirects to another origin.
Each answer is chosen per request by `mode` (set by the test); `Elsewhere` is the other origin a redirect
points to, recording what arrives there.

Under `/openai` it speaks OpenAI's `POST /images/edits` and under `/deepseek` DeepSeek's
`POST /chat/completions` (the `openai` SDK's wire format), each with its own mode in `sdk_modes`:
image (a good answer), gzip_bomb, endless (whitespace streamed until the client hangs up), corrupt_gzip,
redirect_307 (to `redirect_to`).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
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
    sdk_modes: dict[str, str] = field(default_factory=lambda: {"openai": "image", "deepseek": "image"})
    sdk_received: list[str] = field(default_factory=list)
    endless_sent: int = 0
    _bomb: dict[int, bytes] = field(default_factory=dict)

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/openai/images/edits", self._openai, methods=["POST"]),
                Route("/deepseek/chat/completions", self._deepseek, methods=["POST"]),
                Route("/{version}/models/{target}", self._handle, methods=["POST"]),
            ]
        )

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

    async def _openai(self, request: Request) -> Response:
        await request.body()
        self.sdk_received.append("openai")
        good = {"created": 1, "data": [{"b64_json": base64.b64encode(png()).decode()}], "output_format": "png"}
        return self._sdk_answer(self.sdk_modes["openai"], good, request)

    async def _deepseek(self, request: Request) -> Response:
        await request.body()
        self.sdk_received.append("deepseek")
        content = json.dumps({"people": 1, "instruction": "Make the guest a pirate."})
        good = {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "deepseek-chat",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        return self._sdk_answer(self.sdk_modes["deepseek"], good, request)

    def _sdk_answer(self, mode: str, good: dict[str, Any], request: Request) -> Response:
        if mode == "image":
            return JSONResponse(good)
        if mode == "gzip_bomb":
            return Response(self.bomb(), media_type="application/json", headers={"Content-Encoding": "gzip"})
        if mode == "endless":
            return StreamingResponse(self._endless(request), media_type="application/json")
        if mode == "corrupt_gzip":
            return Response(b"\x1f\x8b\x08\x00" + b"not deflate" * 20, headers={"Content-Encoding": "gzip"})
        if mode == "redirect_307":
            return Response(status_code=307, headers={"Location": f"{self.redirect_to}{request.url.path}"})
        raise ValueError(f"unknown hostile SDK mode {mode!r}")

    async def _endless(self, request: Request) -> Any:
        """Valid JSON padding, never finished: the client's limit ends it by hanging up (4 GiB at most)."""
        block = b" " * (1 << 20)
        for _ in range(4096):
            if await request.is_disconnected():
                return
            self.endless_sent += len(block)
            yield block
            await asyncio.sleep(0)


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
