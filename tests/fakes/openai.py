"""A loopback OpenAI Images API: `POST /images/edits` (multipart), `GET /models`, `GET /models/{id}`.

The edit endpoint checks the Bearer key, parses the multipart body the `openai` SDK sends — one
`image` part, or repeated `image[]` parts for several images — and records every field and image, so
tests assert on what went over the wire. The answer is derived from the inputs (the photo inverted,
its right half the inverted reference when one came along) at the requested size and format, so a test
can see that both images were sent.

Modes are queued with `push(mode, times)`; when the queue is empty `default_mode` answers; a key named in
`key_modes` always answers with its own mode (one rate-limited key of several). Modes:
image, slow, moderation_blocked, invalid_key, unknown_model, rate_limited (with `retry_after` when set),
insufficient_quota, unavailable (503), no_image, malformed.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import serve

API_KEY = "sk-fake-openai-0123456789abcdef"
MODELS = ("gpt-image-2", "gpt-image-1.5", "gpt-image-1-mini", "gpt-5", "whisper-1")
USAGE = {
    "input_tokens": 1500,
    "output_tokens": 1056,
    "total_tokens": 2556,
    "input_tokens_details": {"image_tokens": 1300, "text_tokens": 200},
}


@dataclass
class SentImage:
    field: str
    filename: str
    mime: str
    data: bytes
    width: int
    height: int


@dataclass
class Received:
    """One edit request as the fake saw it."""

    authorization: str | None
    fields: dict[str, str]
    images: list[SentImage]
    content_type: str
    at: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> str:
        return self.fields.get("model", "")

    @property
    def prompt(self) -> str:
        return self.fields.get("prompt", "")


def derived_result(photo: bytes, reference: bytes | None, size: tuple[int, int], fmt: str, alpha: bool) -> bytes:
    with Image.open(io.BytesIO(photo)) as im:
        result = ImageOps.invert(im.convert("RGB")).resize(size)
    if reference is not None:
        width, height = size
        with Image.open(io.BytesIO(reference)) as ref:
            half = ImageOps.invert(ref.convert("RGB")).resize((width - width // 2, height))
        result.paste(half, (width // 2, 0))
    out = io.BytesIO()
    if fmt == "png":
        if alpha:
            result.putalpha(200)
        result.save(out, "PNG")
    else:
        result.save(out, "JPEG", quality=92)
    return out.getvalue()


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status, headers=headers)


class FakeOpenAI:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.more_keys: set[str] = set()  # further keys it accepts (several keys per provider, issue 28)
        # key → the mode it always answers with (e.g. "rate_limited" for one key of several), whatever the queue
        self.key_modes: dict[str, str] = {}
        self.models = list(MODELS)
        self.default_mode = "image"
        self.slow_seconds = 5.0
        self.retry_after: str | None = None
        self.received: list[Received] = []
        self.model_calls: list[str] = []
        self._queue: deque[str] = deque()
        # model → fields it answers 400 unknown_parameter for, as OpenAI does for a field a model does not take
        self.refused_fields: dict[str, set[str]] = {}
        routes = []
        for prefix in ("", "/v1"):
            routes += [
                Route(f"{prefix}/images/edits", self._edit, methods=["POST"]),
                Route(f"{prefix}/models", self._models, methods=["GET"]),
                Route(prefix + "/models/{model_id:path}", self._model, methods=["GET"]),
            ]
        self.app = Starlette(routes=routes)

    def reset(self) -> None:
        self.default_mode = "image"
        self.retry_after = None
        self.slow_seconds = 5.0
        self.received.clear()
        self.model_calls.clear()
        self._queue.clear()
        self.models = list(MODELS)
        self.refused_fields = {}
        self.more_keys = set()
        self.key_modes = {}

    def push(self, mode: str, times: int = 1) -> None:
        self._queue.extend([mode] * times)

    def _mode(self) -> str:
        return self._queue.popleft() if self._queue else self.default_mode

    @property
    def last(self) -> Received:
        return self.received[-1]

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") in {f"Bearer {k}" for k in (self.api_key, *self.more_keys)}

    # --- models ---------------------------------------------------------------------------------
    async def _models(self, request: Request) -> Response:
        self.model_calls.append("list")
        if not self._authorised(request):
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "openai"} for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _model(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        self.model_calls.append(model_id)
        if not self._authorised(request):
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if model_id not in self.models:
            return _error(404, f"The model '{model_id}' does not exist", "invalid_request_error", "model_not_found")
        return JSONResponse({"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "openai"})

    # --- edits ----------------------------------------------------------------------------------
    async def _edit(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return _error(400, "Expected multipart/form-data.", "invalid_request_error", None)
        form = await request.form(max_files=32)
        fields: dict[str, str] = {}
        images: list[SentImage] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                with Image.open(io.BytesIO(data)) as im:
                    width, height = im.size
                images.append(SentImage(name, value.filename or "", value.content_type or "", data, width, height))
            else:
                fields[name] = str(value)
        received = Received(request.headers.get("authorization"), fields, images, content_type)
        self.received.append(received)
        if not self._authorised(request):
            return _error(401, "Incorrect API key provided: sk-fa***cdef.", "invalid_request_error", "invalid_api_key")
        key = (received.authorization or "").removeprefix("Bearer ")
        return await self._answer(self.key_modes.get(key) or self._mode(), received, request)

    async def _answer(self, mode: str, received: Received, request: Request) -> Response:
        if mode == "invalid_key":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if mode == "unknown_model" or received.model not in self.models:
            return _error(
                404, f"The model '{received.model}' does not exist", "invalid_request_error", "model_not_found"
            )
        for name in sorted(self.refused_fields.get(received.model, set())):
            if name in received.fields:
                return _error(
                    400,
                    f"Unknown parameter: '{name}'.",
                    "invalid_request_error",
                    "unknown_parameter",
                    param=name,
                )
        if mode == "moderation_blocked":
            return _error(
                400,
                "Your request was rejected by the safety system. safety_violations=[sexual].",
                "image_generation_user_error",
                "moderation_blocked",
            )
        if mode == "rate_limited":
            headers = {"retry-after": self.retry_after} if self.retry_after else None
            return _error(429, "Rate limit reached for images per minute.", "requests", "rate_limit_exceeded", headers)
        if mode == "insufficient_quota":
            return _error(429, "You exceeded your current quota.", "insufficient_quota", "insufficient_quota")
        if mode == "unavailable":
            return _error(503, "The server is overloaded.", "server_error", None)
        if mode == "malformed":
            return Response(b'{"created": 1, "data": [', media_type="application/json")
        if mode == "slow":
            await _sleep_unless_gone(request, self.slow_seconds)
        if mode == "no_image":
            return JSONResponse({"created": int(time.time()), "data": [], "usage": USAGE})
        return JSONResponse(self._image(received))

    def _image(self, received: Received) -> dict[str, Any]:
        fmt = received.fields.get("output_format", "png")
        size_field = received.fields.get("size", "auto")
        size = (1024, 1024) if size_field == "auto" else tuple(int(v) for v in size_field.split("x"))
        photo = received.images[0].data
        reference = received.images[1].data if len(received.images) > 1 else None
        alpha = received.fields.get("background") == "transparent"
        data = derived_result(photo, reference, size, fmt, alpha)  # type: ignore[arg-type]
        return {
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(data).decode()}],
            "usage": USAGE,
            "output_format": fmt,
            "quality": received.fields.get("quality", "auto"),
            "size": size_field,
            "background": received.fields.get("background", "opaque"),
        }


async def _sleep_unless_gone(request: Request, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.05)


@contextmanager
def running(fake: FakeOpenAI | None = None) -> Iterator[tuple[FakeOpenAI, str]]:
    """A fake OpenAI on 127.0.0.1: yields (fake, base URL ending in /v1)."""
    fake = fake or FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url + "/v1"
