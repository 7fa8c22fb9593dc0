"""A loopback DeepSeek API speaking the OpenAI chat format: `POST /chat/completions`.

It checks the Bearer key, decodes the `image_url` blocks (data URIs) with Pillow, and records every
request, so tests assert on what went over the wire. Modes are queued with `push(mode, times)`; when
the queue is empty `default_mode` answers. Modes:

- instruction: 200 with a JSON answer `{"people": 2, "instruction": <self.instruction>}`
- slow: answers after `slow_seconds` (gives up early when the client hangs up)
- balance: 402 Insufficient Balance · rate_limited: 429 · unavailable: 503 · invalid_key: 401
- blank_lines: 200, then `blank_lines` blank lines `blank_interval_seconds` apart as a streamed body,
  then the JSON answer (what DeepSeek does while busy)
- malformed: 200 with `Content-Type: application/json` and a body that is not JSON
- declined: the model answers `{"instruction": "", "problem": ...}` · not_json: content is prose
- content_filter: finish_reason content_filter
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import serve

API_KEY = "sk-fake-deepseek-0123456789"
INSTRUCTION = (
    "Two guests: the woman with glasses on the left, the man with a beard on the right. "
    "Keep both faces and expressions exactly; place them on the beach at the same scale."
)
USAGE = {"prompt_tokens": 1200, "completion_tokens": 150, "total_tokens": 1350}


@dataclass
class SentImage:
    mime: str
    data: bytes
    width: int
    height: int


@dataclass
class Received:
    """One request as the fake saw it."""

    authorization: str | None
    body: dict[str, Any]
    images: list[SentImage]
    texts: list[str]
    at: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> str:
        return str(self.body.get("model"))

    @property
    def system(self) -> str:
        return "\n".join(m["content"] for m in self.body.get("messages", []) if m.get("role") == "system")

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


class FakeDeepSeek:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        # Several keys per provider: further accepted keys, and a per-key mode (e.g. "rate_limited", "balance")
        # that wins over the queue for requests carrying that key.
        self.more_keys: set[str] = set()
        self.key_modes: dict[str, str] = {}
        self.retry_after = "30"
        self.default_mode = "instruction"
        self.instruction = INSTRUCTION
        self.slow_seconds = 5.0
        self.blank_lines = 3
        self.blank_interval_seconds = 0.05
        self.received: list[Received] = []
        self._queue: deque[str] = deque()
        self.models = ["deepseek-flash", "deepseek-v4-pro"]
        self.balance_available = True
        self.app = Starlette(
            routes=[
                Route("/models", self._models, methods=["GET"]),
                Route("/user/balance", self._balance, methods=["GET"]),
                Route("/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
            ]
        )

    def push(self, mode: str, times: int = 1) -> None:
        self._queue.extend([mode] * times)

    def _mode(self) -> str:
        return self._queue.popleft() if self._queue else self.default_mode

    # --- the model list and the balance (what the connection check asks) ---------------------------
    async def _models(self, request: Request) -> Response:
        if not self._accepted(request.headers.get("authorization")):
            return _error(401, "Authentication Fails, Your api key is invalid", "authentication_error")
        data = [{"id": model, "object": "model", "owned_by": "deepseek"} for model in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _balance(self, request: Request) -> Response:
        if not self._accepted(request.headers.get("authorization")):
            return _error(401, "Authentication Fails, Your api key is invalid", "authentication_error")
        infos = [{"currency": "USD", "total_balance": "0.00" if not self.balance_available else "4.20"}]
        return JSONResponse({"is_available": self.balance_available, "balance_infos": infos})

    # --- the endpoint -------------------------------------------------------------------------
    async def _chat(self, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        if not self._accepted(authorization):
            return _error(401, "Authentication Fails, Your api key is invalid", "authentication_error")
        try:
            body = json.loads(await request.body())
            images, texts = _read_messages(body.get("messages", []))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            return _error(400, f"Invalid request: {exc}", "invalid_request_error")
        self.received.append(Received(authorization, body, images, texts))
        key = (authorization or "").removeprefix("Bearer ")
        return await self._answer(self.key_modes.get(key) or self._mode(), body, request)

    def _accepted(self, authorization: str | None) -> bool:
        key = (authorization or "").removeprefix("Bearer ")
        return key == self.api_key or key in self.more_keys

    async def _answer(self, mode: str, body: dict[str, Any], request: Request) -> Response:
        if mode == "balance":
            return _error(402, "Insufficient Balance", "unknown_error")
        if mode == "rate_limited":
            limited = _error(429, "Rate Limit Reached", "rate_limit_error")
            limited.headers["Retry-After"] = self.retry_after
            return limited
        if mode == "unavailable":
            return _error(503, "Server Overloaded", "server_error")
        if mode == "invalid_key":
            return _error(401, "Authentication Fails, Your api key is invalid", "authentication_error")
        if mode == "malformed":
            return Response(b'{"id": "x", "choices": [ {"message": ', media_type="application/json")
        if mode == "slow":
            await _sleep_unless_gone(request, self.slow_seconds)
        if mode == "blank_lines":
            return StreamingResponse(self._blank_then(body), media_type="application/json")
        return JSONResponse(self._completion(body, mode))

    async def _blank_then(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        for _ in range(self.blank_lines):
            yield b"\n"
            await asyncio.sleep(self.blank_interval_seconds)
        yield json.dumps(self._completion(body, "instruction")).encode()

    def _completion(self, body: dict[str, Any], mode: str) -> dict[str, Any]:
        finish = "stop"
        content = json.dumps({"people": 2, "instruction": self.instruction})
        if mode == "declined":
            content = json.dumps({"people": 0, "instruction": "", "problem": "no person in the photo"})
        elif mode == "not_json":
            content = "Sure! Here is an instruction: make it nice."
        elif mode == "content_filter":
            content, finish = "", "content_filter"
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "deepseek-flash"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": USAGE,
            "system_fingerprint": "fp_fake",
        }


def _read_messages(messages: list[dict[str, Any]]) -> tuple[list[SentImage], list[str]]:
    images: list[SentImage] = []
    texts: list[str] = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            continue  # system prompt: kept in the body
        for block in content:
            if block["type"] == "text":
                texts.append(block["text"])
            elif block["type"] == "image_url":
                images.append(_decode_data_uri(block["image_url"]["url"]))
            else:
                raise ValueError(f"unknown content block {block['type']!r}")
    return images, texts


def _decode_data_uri(url: str) -> SentImage:
    head, _, payload = url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise ValueError("image_url must be a base64 data URI")
    mime = head[5:-7]
    data = base64.b64decode(payload, validate=True)
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    return SentImage(mime, data, width, height)


async def _sleep_unless_gone(request: Request, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.05)


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": kind}}, status)


@contextmanager
def running(fake: FakeDeepSeek | None = None) -> Iterator[tuple[FakeDeepSeek, str]]:
    """A fake DeepSeek on 127.0.0.1: yields (fake, base URL)."""
    fake = fake or FakeDeepSeek()
    with serve(fake.app) as url:
        yield fake, url
