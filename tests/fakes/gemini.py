"""A loopback Gemini API speaking the real REST format of `generateContent`.

`POST /v1beta/models/{model}:generateContent` with the `x-goog-api-key` header; request fields are
read in camelCase (what the Python SDK sends) or snake_case (what the REST API also accepts). Every
request is recorded (model, images with their MIME types and sizes, text, generation config) so tests
assert on what went over the wire.

The result of a successful call is derived from the inputs, so a test can prove that the photo and the
reference were both sent: the photo with its colours inverted, and when a reference came along, the
right half replaced by the inverted reference.

Modes are queued with `push(mode, times)`; when the queue is empty `default_mode` answers (normally
"image"). Modes: image, slow, no_image, prompt_blocked, candidate_blocked, rate_limited, unavailable,
internal, invalid_key, billing, permission_denied, unknown_model, thoughts, text_only, free_tier (429 with a
free-tier QuotaFailure, `limit: 0` and RetryInfo), account_blocked (finishReason PUP_LIMITED_DISABLED),
no_access (403 PERMISSION_DENIED without an API-key reason), broken_image (a STOP candidate whose inline
"image/png" bytes are no image). A request whose text carries `fake-mode-<mode>-mode` is answered in that mode
instead (before the queue): slots of one server then get different answers in one burst.

Like the real service it serves `GET /v1beta/models` (paged, `pageSize`/`pageToken`) from `catalogue`, answers
404 NOT_FOUND to generateContent for a model it does not list, and 400 INVALID_ARGUMENT to an `imageSize`
a model does not take (`image_sizes`: model → sizes it takes; [] = none).
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# What Google lists on 2026-11-28 (shared/providers/gemini.md): image models beside others the provider
# must filter out (text models, embeddings).
CURRENT_MODELS: dict[str, str] = {
    "gemini-nano-banana-2.1": "Nano Banana 2.1",
    "gemini-3-pro-image": "Nano Banana Pro",
    "gemini-3.1-flash-lite-image": "Nano Banana 2 Lite",
}
OTHER_MODELS: dict[str, tuple[str, list[str]]] = {
    "gemini-3-flash": ("Gemini 3 Flash", ["generateContent", "countTokens", "createCachedContent"]),
    "text-embedding-005": ("Text Embedding 005", ["embedContent"]),
    "imagen-5.0-generate": ("Imagen 5", ["predict"]),  # an image model, but not a generateContent one
}
# The lite model takes only 1K; the others all three sizes.
IMAGE_SIZES: dict[str, list[str]] = {"gemini-3.1-flash-lite-image": ["1K"]}

USAGE = {"promptTokenCount": 1290, "candidatesTokenCount": 1120, "totalTokenCount": 2410}


@dataclass
class SentImage:
    mime: str
    data: bytes
    width: int
    height: int


@dataclass
class Received:
    """One request as the fake saw it."""

    model: str
    api_key: str | None
    images: list[SentImage]
    texts: list[str]
    generation_config: dict[str, Any]
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def image_config(self) -> dict[str, Any]:
        return _pick(self.generation_config, "imageConfig", "image_config") or {}


def _pick(mapping: dict[str, Any] | None, camel: str, snake: str) -> Any:
    """A field by its camelCase or snake_case name (the API accepts both)."""
    if not mapping:
        return None
    return mapping.get(camel, mapping.get(snake))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _inline(image: Image.Image, *, thought: bool = False) -> dict[str, Any]:
    part: dict[str, Any] = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(_png(image)).decode()}}
    if thought:
        part["thought"] = True
    return part


def derived_result(photo: bytes, reference: bytes | None) -> Image.Image:
    """The fake's answer: the inverted photo, its right half the inverted reference when one was sent."""
    with Image.open(io.BytesIO(photo)) as im:
        result = ImageOps.invert(im.convert("RGB"))
    if reference is not None:
        width, height = result.size
        with Image.open(io.BytesIO(reference)) as ref:
            half = ImageOps.invert(ref.convert("RGB")).resize((width - width // 2, height))
        result.paste(half, (width // 2, 0))
    return result


def _error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=code)


def _invalid_key() -> JSONResponse:
    return _error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    )


class GeminiFake:
    """The fake's state: what it expects, what it will answer, what it received."""

    def __init__(self, api_key: str = "test-gemini-key") -> None:
        self.api_key = api_key
        self.app = Starlette(
            routes=[
                Route("/{version}/models", self._list, methods=["GET"]),
                Route("/{version}/models/{target}", self._handle, methods=["POST"]),
            ]
        )
        self.reset()

    def reset(self) -> None:
        """Back to answering every request with an image, with nothing recorded."""
        self.default_mode = "image"
        self.queue: deque[str] = deque()
        self.received: list[Received] = []
        self.slow_seconds = 5.0
        # "slow" answers at this `time.monotonic()` instant instead (a test times an answer against the
        # booth's deadline, which starts when the booth's request arrives, not when this fake is asked).
        self.slow_until: float | None = None
        self.retry_delay = "1s"
        self.block_reason = "PROHIBITED_CONTENT"
        self.finish_reason = "IMAGE_SAFETY"
        # Answer images of this size whatever the input (real Gemini answers e.g. 1024×1024); None = input's.
        self.answer_size: tuple[int, int] | None = None
        self.catalogue: dict[str, str] = dict(CURRENT_MODELS)
        self.image_sizes: dict[str, list[str]] = {k: list(v) for k, v in IMAGE_SIZES.items()}
        self.list_mode = "ok"  # ok | invalid_key | unavailable
        self.list_calls = 0
        # Several keys (issue 28): more keys it accepts, and a mode forced for every call with a given key
        # ("rate_limited" answers 429 with retryDelay and Retry-After = `retry_delay`; "unauthenticated" 401).
        self.more_keys: set[str] = set()
        self.key_modes: dict[str, str] = {}
        self.page_size_cap = 2  # small pages, so the SDK's pager is exercised

    async def _list(self, request: Request) -> JSONResponse:
        """`GET /v1beta/models`: the catalogue, paged like the real API."""
        self.list_calls += 1
        listing_key = request.headers.get("x-goog-api-key")
        if listing_key not in {self.api_key, *self.more_keys} or self.list_mode == "invalid_key":
            return _invalid_key()
        if self.key_modes.get(listing_key or "") == "unauthenticated":
            return self._unauthenticated(None)
        if self.list_mode == "unavailable":
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        models = [
            _model(model_id, label, ["generateContent", "countTokens"]) for model_id, label in self.catalogue.items()
        ] + [_model(model_id, label, actions) for model_id, (label, actions) in OTHER_MODELS.items()]
        size = min(int(request.query_params.get("pageSize") or 50), self.page_size_cap)
        start = int(request.query_params.get("pageToken") or 0)
        body: dict[str, Any] = {"models": models[start : start + size]}
        if start + size < len(models):
            body["nextPageToken"] = str(start + size)
        return JSONResponse(body)

    def push(self, mode: str, times: int = 1) -> None:
        """Answer the next `times` requests in `mode`."""
        self.queue.extend([mode] * times)

    @property
    def last(self) -> Received:
        return self.received[-1]

    def _next_mode(self) -> str:
        return self.queue.popleft() if self.queue else self.default_mode

    async def _handle(self, request: Request) -> JSONResponse:
        model, _, method = request.path_params["target"].partition(":")
        if request.path_params["version"] != "v1beta" or method != "generateContent":
            return _error(404, "NOT_FOUND", f"Method {method!r} not found for API version.")
        body = await request.json()
        received = self._record(model, request, body)
        if received.api_key not in {self.api_key, *self.more_keys}:
            return _invalid_key()
        forced = self.key_modes.get(received.api_key or "")
        if forced is not None:
            return await self._answer(forced, received, request)
        if model not in self.catalogue:
            return _error(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models.",
            )
        size = _pick(received.image_config, "imageSize", "image_size")
        if size and model in self.image_sizes and size not in self.image_sizes[model]:
            return _error(
                400,
                "INVALID_ARGUMENT",
                f"Image size {size} is not supported for this model.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [
                            {
                                "field": "generation_config.image_config.image_size",
                                "description": f"Unsupported image size {size} for models/{model}.",
                            }
                        ],
                    }
                ],
            )
        chosen = _MODE_IN_TEXT.search(received.text)
        return await self._answer(chosen.group(1) if chosen else self._next_mode(), received, request)

    def _record(self, model: str, request: Request, body: dict[str, Any]) -> Received:
        images: list[SentImage] = []
        texts: list[str] = []
        for content in body.get("contents", []):
            for part in content.get("parts", []):
                inline = _pick(part, "inlineData", "inline_data")
                if inline is not None:
                    # The SDK sends URL-safe base64, other clients the standard alphabet: take both.
                    data = base64.b64decode(inline["data"], altchars=b"-_")
                    with Image.open(io.BytesIO(data)) as im:
                        width, height = im.size
                    images.append(SentImage(_pick(inline, "mimeType", "mime_type"), data, width, height))
                elif "text" in part:
                    texts.append(part["text"])
        received = Received(
            model=model,
            api_key=request.headers.get("x-goog-api-key"),
            images=images,
            texts=texts,
            generation_config=_pick(body, "generationConfig", "generation_config") or {},
            body=body,
            headers={k: v for k, v in request.headers.items() if k != "x-goog-api-key"},
        )
        self.received.append(received)
        return received

    async def _answer(self, mode: str, received: Received, request: Request) -> JSONResponse:
        if mode == "slow":
            seconds = self.slow_seconds if self.slow_until is None else self.slow_until - time.monotonic()
            if not await self._sleep_unless_gone(request, seconds):
                return _error(499, "CANCELLED", "client went away")
            mode = "image"
        answer = ANSWERS.get(mode)
        if answer is None:
            raise ValueError(f"unknown fake mode {mode!r}")
        return answer(self, received)

    @staticmethod
    async def _sleep_unless_gone(request: Request, seconds: float) -> bool:
        """Sleep in small steps so a client that gave up does not hold the server's shutdown."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until:
            if await request.is_disconnected():
                return False
            await asyncio.sleep(0.05)
        return True

    # --- answers ------------------------------------------------------------------------------

    def _image(self, received: Received) -> JSONResponse:
        return _candidate([{"text": "Here is the picture."}, _inline(self._result(received))])

    def _result(self, received: Received) -> Image.Image:
        if not received.images:  # text to image: a picture whose colour is derived from the prompt
            shade = sum(received.text.encode()) % 200
            drawn = Image.new("RGB", (512, 384), (40 + shade // 2, 30 + shade, 90))
            return drawn.resize(self.answer_size) if self.answer_size else drawn
        photo = received.images[0].data
        reference = received.images[1].data if len(received.images) > 1 else None
        result = derived_result(photo, reference)
        return result.resize(self.answer_size) if self.answer_size else result

    def _thoughts(self, received: Received) -> JSONResponse:
        draft = Image.new("RGB", (64, 48), (128, 128, 128))
        parts = [
            {"text": "Planning the composition.", "thought": True},
            _inline(draft, thought=True),
            _inline(draft, thought=True),
            {"text": "Done."},
            _inline(self._result(received)),
        ]
        return _candidate(parts, usage={**USAGE, "thoughtsTokenCount": 300})

    def _no_image(self, received: Received) -> JSONResponse:
        return JSONResponse(
            {
                "candidates": [{"content": {"role": "model"}, "finishReason": "NO_IMAGE", "index": 0}],
                "usageMetadata": USAGE,
            }
        )

    def _text_only(self, received: Received) -> JSONResponse:
        return _candidate([{"text": "I can't create that image, but here is a description instead."}])

    def _prompt_blocked(self, received: Received) -> JSONResponse:
        return JSONResponse(
            {
                "promptFeedback": {"blockReason": self.block_reason},
                "usageMetadata": {"promptTokenCount": 1290},
            }
        )

    def _broken_image(self, received: Received) -> JSONResponse:
        broken = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(b"\x89PNG but not").decode()}}
        return _candidate([{"text": "Here is the picture."}, broken])

    def _candidate_blocked(self, received: Received) -> JSONResponse:
        candidate = {
            "content": {"role": "model"},
            "finishReason": self.finish_reason,
            "finishMessage": "Unable to show the generated image.",
            "index": 0,
        }
        return JSONResponse({"candidates": [candidate], "usageMetadata": USAGE})

    def _rate_limited(self, received: Received) -> JSONResponse:
        return _error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests"}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": self.retry_delay},
            ],
        )

    def _rate_limited_for_key(self, received: Received) -> JSONResponse:
        answer = self._rate_limited(received)
        answer.headers["Retry-After"] = self.retry_delay.rstrip("s")
        return answer

    def _unauthenticated(self, received: Received | None) -> JSONResponse:
        return _error(
            401,
            "UNAUTHENTICATED",
            "API keys are not supported by this API. Expected OAuth2 access token or other authentication credentials.",
            [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED"}],
        )

    def _free_tier(self, received: Received) -> JSONResponse:
        """What a key whose project has no billing gets from an image model (the real body's shape)."""
        metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
        return _error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details. For more information "
            "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n"
            f"* Quota exceeded for metric: {metric}, limit: 0, model: {received.model}\n"
            f"Please retry in {self.retry_delay}.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": metric,
                            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                            "quotaDimensions": {"location": "global", "model": received.model},
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {"description": "Learn more", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": self.retry_delay},
            ],
        )

    def _account_blocked(self, received: Received) -> JSONResponse:
        candidate = {"content": {"role": "model"}, "finishReason": "PUP_LIMITED_DISABLED", "index": 0}
        return JSONResponse({"candidates": [candidate], "usageMetadata": USAGE})

    def _no_access(self, received: Received) -> JSONResponse:
        return _error(403, "PERMISSION_DENIED", "The caller does not have permission")

    def _unavailable(self, received: Received) -> JSONResponse:
        return _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")

    def _internal(self, received: Received) -> JSONResponse:
        return _error(500, "INTERNAL", "An internal error has occurred.")

    def _invalid_key(self, received: Received) -> JSONResponse:
        return _invalid_key()

    def _billing(self, received: Received) -> JSONResponse:
        return _error(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")

    def _permission_denied(self, received: Received) -> JSONResponse:
        return _error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")

    def _unknown_model(self, received: Received) -> JSONResponse:
        return _error(404, "NOT_FOUND", f"models/{received.model} is not found for API version v1beta.")


def _model(model_id: str, label: str, actions: list[str]) -> dict[str, Any]:
    return {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": label,
        "inputTokenLimit": 65536,
        "outputTokenLimit": 32768,
        "supportedGenerationMethods": actions,
    }


def _candidate(parts: list[dict[str, Any]], usage: dict[str, int] | None = None) -> JSONResponse:
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    return JSONResponse({"candidates": [candidate], "usageMetadata": usage or USAGE, "responseId": "fake-response"})


ANSWERS = {
    "image": GeminiFake._image,
    "thoughts": GeminiFake._thoughts,
    "no_image": GeminiFake._no_image,
    "text_only": GeminiFake._text_only,
    "prompt_blocked": GeminiFake._prompt_blocked,
    "candidate_blocked": GeminiFake._candidate_blocked,
    "rate_limited": GeminiFake._rate_limited,
    "rate_limited_for_key": GeminiFake._rate_limited_for_key,
    "unauthenticated": GeminiFake._unauthenticated,
    "unavailable": GeminiFake._unavailable,
    "internal": GeminiFake._internal,
    "invalid_key": GeminiFake._invalid_key,
    "billing": GeminiFake._billing,
    "permission_denied": GeminiFake._permission_denied,
    "unknown_model": GeminiFake._unknown_model,
    "free_tier": GeminiFake._free_tier,
    "account_blocked": GeminiFake._account_blocked,
    "no_access": GeminiFake._no_access,
    "broken_image": GeminiFake._broken_image,
}
_MODE_IN_TEXT = re.compile(r"fake-mode-([a-z_]+)-mode")


def mode_marker(mode: str) -> str:
    """The text to put in a slot's prompt to have the fake answer that slot's requests in `mode`."""
    assert mode == "slow" or mode in ANSWERS, mode
    return f"fake-mode-{mode}-mode"
