"""A loopback fal.ai queue: submit → status (IN_QUEUE → IN_PROGRESS → COMPLETED) → result, cancel, and a
file host for the result images (fal's CDN).

    POST /{model id}                           Authorization: Key …, JSON input
    GET  /{app}/requests/{id}/status           202 while queued or running, 200 when done ("logs": [])
    GET  /{app}/requests/{id}                  the model's output
    PUT  /{app}/requests/{id}/cancel           202 CANCELLATION_REQUESTED
    GET  /files/{name}                         result image bytes (no key needed)

The status/response/cancel URLs are the fake's own (with `/{app}` = the first two segments of the
model id, as fal does), so a client that builds URLs instead of using the returned ones fails.
Inputs (data URIs or links) are decoded and recorded with every request, poll and cancel, so tests
assert on what went over the wire and when. The output is derived from the inputs: the photo inverted,
its right half the inverted reference when one came along; BiRefNet answers the photo itself with the
right half transparent.

Modes (`push(mode)` for the next submit, else `default_mode`):
image · stuck (IN_PROGRESS forever) · failed (status FAILED) · completed_error (COMPLETED with an
error) · nsfw (has_nsfw_concepts [true]) · result_422 (the result answers a validation detail list) ·
invalid_key (401) · unknown_model (404) · unavailable (503, X-Fal-Retryable: true) · rate_limited
(429 + `retry_after`) · validation (422 at submit) · balance (403 exhausted balance) · no_image.
"""

from __future__ import annotations

import base64
import io
import itertools
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image, ImageOps
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import serve

API_KEY = "fal-key-id:fal-key-secret-0123456789"
# The catalogue as fal serves it on 2026-12-02: retired ids answer 404, owners other than these too.
RETIRED = frozenset({"fal-ai/birefnet", "fal-ai/nano-banana-2/edit"})
OWNERS = frozenset({"fal-ai", "google"})
# Upscalers the fake serves: the input enlarged by the factor argument named here (2 when none).
UPSCALERS = {
    "fal-ai/esrgan": "scale",
    "fal-ai/clarity-upscaler": "upscale_factor",
    "fal-ai/recraft/upscale/crisp": None,
}


@dataclass
class SentImage:
    source: str  # "data_uri" or "link"
    mime: str
    data: bytes
    width: int
    height: int


@dataclass
class Submit:
    model: str
    authorization: str | None
    body: dict[str, Any]
    images: list[SentImage]
    request_id: str = ""
    at: float = field(default_factory=time.monotonic)

    @property
    def prompt(self) -> str:
        return str(self.body.get("prompt", ""))


@dataclass
class Job:
    request_id: str
    app: str
    model: str
    mode: str
    submit: Submit
    polls: int = 0
    cancelled: bool = False


def _image_fields(body: dict[str, Any]) -> list[str]:
    urls = body.get("image_urls")
    if isinstance(urls, list):
        return [str(u) for u in urls]
    return [str(body["image_url"])] if "image_url" in body else []


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status, headers=headers)


class FakeFal:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PUT"])])
        self.base_url = ""
        self.reset()

    def reset(self) -> None:
        self.default_mode = "image"
        self.queue_polls = 1  # polls answered IN_QUEUE before IN_PROGRESS
        self.progress_polls = 1  # then polls answered IN_PROGRESS before COMPLETED
        self.retry_after: str | None = None
        self.url_base: str | None = None  # the base of the URLs the fake hands out (default: its own)
        self.more_keys: set[str] = set()  # further keys it accepts (several keys per provider, issue 28)
        self.submits: list[Submit] = []
        self.polls: list[tuple[str, float]] = []
        self.results: list[str] = []
        self.cancels: list[tuple[str, float, str | None]] = []
        self.downloads: list[str] = []
        self.jobs: dict[str, Job] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self._queue: deque[str] = deque()
        self._ids = itertools.count(1)

    def push(self, mode: str, times: int = 1) -> None:
        self._queue.extend([mode] * times)

    @property
    def last(self) -> Submit:
        return self.submits[-1]

    # --- routing --------------------------------------------------------------------------------
    async def _dispatch(self, request: Request) -> Response:
        path = request.path_params["path"].strip("/")
        self.base_url = str(request.base_url).rstrip("/")
        if request.method == "GET" and path.startswith("files/"):
            return self._file(path[len("files/") :])
        if request.headers.get("authorization") not in {f"Key {k}" for k in (self.api_key, *self.more_keys)}:
            return _error(401, "No user found for Key ID and Secret")
        parts = path.split("/")
        if "requests" in parts:
            index = parts.index("requests")
            if index != 2:  # fal: status/result/cancel URLs take owner/app only, never the endpoint's sub-path
                return _error(405, "Method not allowed: do not add the endpoint path to queue request URLs")
            request_id = parts[index + 1] if len(parts) > index + 1 else ""
            rest = parts[index + 2 :]
            job = self.jobs.get(request_id)
            if job is None:
                return _error(404, f"Request {request_id} not found")
            if request.method == "GET" and rest == ["status"]:
                return self._status(job)
            if request.method == "GET" and rest == []:
                return self._result(job)
            if request.method == "PUT" and rest == ["cancel"]:
                self.cancels.append((job.request_id, time.monotonic(), request.headers.get("authorization")))
                job.cancelled = True
                return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)
            return _error(405, "Method not allowed")
        if request.method == "POST":
            return await self._submit(path, request)
        return _error(404, "Not found")

    # --- submit ---------------------------------------------------------------------------------
    async def _submit(self, model: str, request: Request) -> Response:
        body = await request.json()
        images = [await self._decode(url) for url in _image_fields(body)]
        submit = Submit(model, request.headers.get("authorization"), body, images)
        self.submits.append(submit)
        mode = self._queue.popleft() if self._queue else self.default_mode
        if mode == "invalid_key":
            return _error(401, "No user found for Key ID and Secret")
        if mode == "balance":
            return _error(
                403, "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
            )
        if mode == "unknown_model" or model.split("/")[0] not in OWNERS or model in RETIRED:
            return _error(404, f"Application '{model}' not found")
        if mode == "unavailable":
            return _error(503, "Service temporarily unavailable", {"X-Fal-Retryable": "true"})
        if mode == "rate_limited":
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return _error(429, "Too many concurrent requests", headers)
        if mode == "validation":
            detail = [
                {"loc": ["body", "image_urls", 0], "msg": "Could not download the image", "type": "image_load_error"}
            ]
            return _error(422, detail, {"X-Fal-Retryable": "false"})
        request_id = f"req-{next(self._ids):04d}"
        submit.request_id = request_id
        app = "/".join(model.split("/")[:2])
        self.jobs[request_id] = Job(request_id, app, model, mode, submit)
        base = f"{self.url_base or self.base_url}/{app}/requests/{request_id}"
        return JSONResponse(
            {
                "request_id": request_id,
                "status": "IN_QUEUE",
                "queue_position": 1,
                "status_url": f"{base}/status",
                "response_url": base,
                "cancel_url": f"{base}/cancel",
            }
        )

    async def _decode(self, url: str) -> SentImage:
        if url.startswith("data:"):
            head, _, payload = url.partition(",")
            data, mime, source = base64.b64decode(payload, validate=True), head[5:].split(";")[0], "data_uri"
        else:
            async with httpx.AsyncClient() as client:
                response = await client.get(url)
            data, mime, source = response.content, response.headers.get("content-type", ""), "link"
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
        return SentImage(source, mime, data, width, height)

    # --- status and result ----------------------------------------------------------------------
    def _status(self, job: Job) -> Response:
        self.polls.append((job.request_id, time.monotonic()))
        job.polls += 1
        base = f"{self.base_url}/{job.app}/requests/{job.request_id}"
        common = {"request_id": job.request_id, "response_url": base, "status_url": f"{base}/status", "logs": []}
        if job.mode == "failed" and job.polls > self.queue_polls:
            return JSONResponse({**common, "status": "FAILED", "error": "Worker crashed while processing"}, 200)
        if job.polls <= self.queue_polls:
            return JSONResponse({**common, "status": "IN_QUEUE", "queue_position": 0}, 202)
        if job.mode == "stuck" or job.polls <= self.queue_polls + self.progress_polls:
            return JSONResponse({**common, "status": "IN_PROGRESS"}, 202)
        done: dict[str, Any] = {**common, "status": "COMPLETED", "metrics": {"inference_time": 1.2}}
        if job.mode == "completed_error":
            done.update(error="Internal error in the model", error_type="internal_error")
        return JSONResponse(done, 200)

    def _result(self, job: Job) -> Response:
        self.results.append(job.request_id)
        if job.mode == "result_422":
            detail = [{"loc": ["body", "prompt"], "msg": "The prompt is too long", "type": "value_error"}]
            return _error(422, detail)
        if job.mode == "no_image":
            return JSONResponse({"images": [], "seed": 1})
        submit = job.submit
        if job.model in UPSCALERS:
            name = UPSCALERS[job.model]
            factor = int(submit.body.get(name, 2)) if name else 2
            with Image.open(io.BytesIO(submit.images[0].data)) as im:
                bigger = im.convert("RGB").resize((im.width * factor, im.height * factor))
            return JSONResponse({"image": self._publish(_png(bigger), "image/png")})
        if job.model == "fal-ai/birefnet/v2":
            return JSONResponse({"image": self._publish(self._cutout(submit.images[0].data), "image/png")})
        fmt = str(submit.body.get("output_format", "png"))
        image = self._publish(self._derived(submit), "image/jpeg" if fmt == "jpeg" else "image/png")
        output: dict[str, Any] = {"images": [image], "seed": 42}
        if job.model.startswith("fal-ai/flux-pro/kontext"):
            output["has_nsfw_concepts"] = [job.mode == "nsfw"]
        elif job.mode == "nsfw":
            output["has_nsfw_concepts"] = [True]
        return JSONResponse(output)

    def _derived(self, submit: Submit) -> bytes:
        with Image.open(io.BytesIO(submit.images[0].data)) as im:
            result = ImageOps.invert(im.convert("RGB"))
        if len(submit.images) > 1:
            width, height = result.size
            with Image.open(io.BytesIO(submit.images[1].data)) as ref:
                half = ImageOps.invert(ref.convert("RGB")).resize((width - width // 2, height))
            result.paste(half, (width // 2, 0))
        out = io.BytesIO()
        if submit.body.get("output_format") == "jpeg":
            result.save(out, "JPEG", quality=92)
        else:
            result.save(out, "PNG")
        return out.getvalue()

    @staticmethod
    def _cutout(photo: bytes) -> bytes:
        """The photo with its right half transparent: "the guests" are the left half."""
        with Image.open(io.BytesIO(photo)) as im:
            cut = im.convert("RGBA")
        alpha = Image.new("L", cut.size, 255)
        alpha.paste(0, (cut.width // 2, 0, cut.width, cut.height))
        cut.putalpha(alpha)
        return _png(cut)

    def _publish(self, data: bytes, mime: str) -> dict[str, Any]:
        name = f"result-{len(self.files) + 1}.{'png' if mime == 'image/png' else 'jpg'}"
        self.files[name] = (data, mime)
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
        return {"url": f"{self.base_url}/files/{name}", "content_type": mime, "width": width, "height": height}

    def _file(self, name: str) -> Response:
        self.downloads.append(name)
        if name not in self.files:
            return Response(b"not found", 404)
        data, mime = self.files[name]
        return Response(data, media_type=mime)


@contextmanager
def running(fake: FakeFal | None = None) -> Iterator[tuple[FakeFal, str]]:
    """A fake fal queue on 127.0.0.1: yields (fake, queue URL)."""
    fake = fake or FakeFal()
    with serve(fake.app) as url:
        yield fake, url
