"""A loopback Turbotext photo AI that speaks its wire format (see shared/providers/turbotext.md).

`POST /api_ai/{method}` with a form-encoded body and `Authorization: Bearer KEY`:
`do=create_queue` + the method's fields → `{"success":true,"queueid":N}` (or `asyncid` with `webhook=`);
`do=get_result&queueid=N` → `action: reconnect` a few times, then the finished answer.

Like the real service it **downloads the input URLs it is given** when the job is queued, so tests prove
the published links are reachable and serve valid images. The result is the guest photo mirrored
left-to-right (PNG), served by the fake itself at `/download.php?f=...`, so tests prove the right photo
went through. Everything received is recorded with its monotonic time.

A refused key gets HTTP 200 `{"success": false, "error": "Неверный API ключ"}`, as the real service answers
(`bad_key_status` = 401 gives the old HTTP-level answer). `available_api` (the discovery method) queues at once
and then lists the methods.

Switches (plain attributes, set them before posting):
  mode            ok | error (success:false + error_text) | forbidden | slow (never ready) | malformed
  error_at        create | result (where `error` mode fails)
  reconnects      get_result answers `reconnect` this many times before the result
  create_failures create_queue answers HTTP 500 this many times first
  link_failures   the result link answers 404 this many times first
  link_style      by_method | top | data | relative (where the finished answer puts the link)
  webhook_deliveries  how many times a finished job is POSTed to its webhook (0 = lost, 2 = duplicate)
  more_keys       further keys the fake accepts besides `api_key` (several keys per provider)
  limited_keys    keys answered HTTP 429 with `Retry-After: retry_after` (a per-key rate limit)
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import httpx
from PIL import Image, ImageOps
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REQUIRED = {
    "deepfake_photo": ("url", "url_image_target"),
    "mix_images": ("url", "url_image_target"),
    "generate_image2image": ("url", "content"),
}
# Which input is the guest photo (the one the result is made from).
GUEST_FIELD = {"deepfake_photo": "url_image_target", "mix_images": "url_image_target"}


@dataclass
class Received:
    at: float
    path: str
    form: dict[str, str]
    content_type: str
    authorized: bool
    key: str = ""  # the Bearer key the request carried

    @property
    def do(self) -> str:
        return self.form.get("do", "")


@dataclass
class Fetch:
    url: str
    status: int
    data: bytes


@dataclass
class Job:
    method: str
    form: dict[str, str]
    result_name: str
    width: int
    height: int
    polls: int = 0
    key: str = ""  # the account's key that queued it: another key does not find the queue
    ready: bool = True  # False while a late fetch (`fetch_after_seconds`) has not got the inputs yet
    failed: str = ""  # the error a late fetch that could not get its inputs ends the queue with


@dataclass
class FakeTurbotext:
    api_key: str = "tt-test-key"
    mode: str = "ok"
    error_at: str = "create"
    error_text: str = "Недостаточно средств на балансе"
    reconnects: int = 1
    create_failures: int = 0
    link_failures: int = 0
    link_style: str = "by_method"
    webhook_deliveries: int = 1
    webhook_delay_seconds: float = 0.05
    slow_seconds: float = 0.0  # every API answer waits this long first
    # > 0: the queue is answered at once and the inputs are downloaded this much later (a busy service
    # that fetches when the job's turn comes), not while the job is queued.
    fetch_after_seconds: float = 0.0
    bad_key_status: int = 200
    bad_key_text: str = "Неверный API ключ"
    more_keys: set[str] = field(default_factory=set)
    limited_keys: set[str] = field(default_factory=set)
    retry_after: str = "30"
    received: list[Received] = field(default_factory=list)
    fetches: list[Fetch] = field(default_factory=list)
    downloads: list[tuple[float, str, int]] = field(default_factory=list)
    deliveries: list[tuple[float, str, int]] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    results: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.app = Starlette(
            routes=[
                Route("/api_ai/{method}", self._api, methods=["POST"]),
                Route("/download.php", self._download, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    def reset(self) -> None:
        """Back to the defaults with nothing recorded (one server serves a whole test module)."""
        for spec in fields(self):
            value = spec.default_factory() if spec.default_factory is not MISSING else spec.default
            setattr(self, spec.name, value)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # One client for the fake's own requests (inputs, webhooks): building one costs an SSL context.
        async with httpx.AsyncClient(timeout=5) as client:
            self._client = client
            yield

    # --- what tests look at ---------------------------------------------------------------
    def calls(self, do: str | None = None) -> list[Received]:
        return [r for r in self.received if do is None or r.do == do]

    def incoming_after(self, instant: float) -> list[str]:
        """Requests that reached the fake after `instant` (monotonic), for "nothing after the answer"."""
        api = [f"{r.path} do={r.do}" for r in self.received if r.at > instant]
        return api + [f"download {name}" for at, name, _ in self.downloads if at > instant]

    # --- the API ------------------------------------------------------------------------------
    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        form = {k: str(v) for k, v in (await request.form()).items()}
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        authorized = key == self.api_key or key in self.more_keys
        self.received.append(
            Received(time.monotonic(), request.url.path, form, request.headers.get("content-type", ""), authorized, key)
        )
        if self.slow_seconds:
            await asyncio.sleep(self.slow_seconds)
        if authorized and key in self.limited_keys:
            return JSONResponse(
                {"success": False, "error": "Too many requests"},
                status_code=429,
                headers={"Retry-After": self.retry_after},
            )
        if not authorized:
            return JSONResponse({"success": False, "error": self.bad_key_text}, status_code=self.bad_key_status)
        if method == "available_api":
            return self._available_api(form)
        if self.mode == "malformed":
            return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
        if form.get("do") == "create_queue":
            return await self._create_queue(method, form, str(request.base_url), key)
        if form.get("do") == "get_result":
            return self._get_result(form.get("queueid", ""), str(request.base_url), key)
        return JSONResponse({"success": False, "error": "Неизвестное действие"})

    async def _create_queue(self, method: str, form: dict[str, str], base_url: str, key: str = "") -> Response:
        if self.create_failures > 0:
            self.create_failures -= 1
            return Response("Internal Server Error", status_code=500)
        if self.mode == "error" and self.error_at == "create":
            return JSONResponse({"success": False, "error": self.error_text})
        missing = [name for name in REQUIRED.get(method, ()) if not form.get(name)]
        if missing:
            return JSONResponse({"success": False, "error": f"Не заполнены поля: {', '.join(missing)}"})
        if self.fetch_after_seconds > 0 and "webhook" not in form:
            job_id = str(secrets.randbelow(9_000_000) + 1_000_000)
            self.jobs[job_id] = Job(method, form, "", 0, 0, key=key, ready=False)
            self._spawn(self._fetch_later(self.jobs[job_id]))
            return JSONResponse({"success": True, "queueid": int(job_id)})
        guest, error = await self._inputs(method, form)
        if guest is None:
            return JSONResponse({"success": False, "error": error})
        job_id = str(secrets.randbelow(9_000_000) + 1_000_000)
        name = f"{secrets.token_hex(8)}.png"
        self.results[name] = _mirror_png(guest)
        self.jobs[job_id] = Job(method, form, name, guest.width, guest.height, key=key)
        if "webhook" in form:
            self._spawn(self._deliver(form["webhook"], job_id, base_url))
            return JSONResponse({"success": True, "asyncid": int(job_id)})
        return JSONResponse({"success": True, "queueid": int(job_id)})

    async def _inputs(self, method: str, form: dict[str, str]) -> tuple[Image.Image | None, str]:
        """Download the job's input URLs: the guest's image, or None and the error Turbotext answers."""
        images = {}
        for name in ("url", "url_image_target"):
            if name in form:
                image = await self._fetch(form[name])
                if image is None:
                    return None, f"Не удалось загрузить изображение {name}"
                images[name] = image
        guest = images.get(GUEST_FIELD.get(method, "url")) or next(iter(images.values()), None)
        return guest, "" if guest is not None else "Нет изображения"

    async def _fetch_later(self, job: Job) -> None:
        await asyncio.sleep(self.fetch_after_seconds)
        guest, error = await self._inputs(job.method, job.form)
        if guest is None:
            job.failed = error
        else:
            job.result_name = f"{secrets.token_hex(8)}.png"
            self.results[job.result_name] = _mirror_png(guest)
            job.width, job.height = guest.width, guest.height
        job.ready = True

    def _available_api(self, form: dict[str, str]) -> Response:
        if self.mode == "error" and self.error_at == "create":
            return JSONResponse({"success": False, "error": self.error_text})
        if form.get("do") == "create_queue":
            return JSONResponse({"success": True, "queueid": 1})
        # As Turbotext's docs show it: a top-level list of {name, description} objects.
        methods = [{"name": name, "description": f"{name} (fake)"} for name in sorted(REQUIRED)]
        return JSONResponse({"success": True, "error": "", "available_api": methods})

    def _get_result(self, queue_id: str, base_url: str, key: str = "") -> Response:
        job = self.jobs.get(queue_id)
        if job is None or (key and job.key and key != job.key):
            return JSONResponse({"success": False, "error": "Очередь не найдена"})
        if job.failed:
            return JSONResponse({"success": False, "error": job.failed})
        if self.mode == "slow" or not job.ready or job.polls < self.reconnects:
            job.polls += 1
            # success:false beside reconnect on purpose: reconnect wins whatever success says.
            return JSONResponse({"success": False, "action": "reconnect"})
        return JSONResponse(self.finished(job, base_url))

    def finished(self, job: Job, base_url: str) -> dict[str, Any]:
        """The finished answer, shaped per method like the documented examples."""
        if self.mode == "error" and self.error_at == "result":
            return {"success": False, "error": self.error_text}
        absolute = f"{base_url}download.php?f={job.result_name}"
        relative = f"download.php?f={job.result_name}"
        data: dict[str, Any] = {"width": job.width, "height": job.height, "forbidden_content": False}
        if self.mode == "forbidden":
            return {"success": True, "error": "", "data": {**data, "image": [], "forbidden_content": True}}
        style = self.link_style
        if style == "by_method":
            style = {"deepfake_photo": "top", "mix_images": "top"}.get(job.method, "relative")
        if style == "top":
            return {
                "success": True,
                "error": "",
                "data": {**data, "image": [absolute]},
                "uploaded_image": absolute,
            }
        if style == "data":
            return {"success": True, "error": "", "data": {**data, "uploaded_image": absolute}}
        return {"success": True, "error": "", "data": {**data, "image": [relative]}}

    # --- inputs, results, webhooks ----------------------------------------------------------------
    async def _fetch(self, url: str) -> Image.Image | None:
        assert self._client is not None
        try:
            response = await self._client.get(url)
        except httpx.HTTPError:
            self.fetches.append(Fetch(url, 0, b""))
            return None
        self.fetches.append(Fetch(url, response.status_code, response.content))
        if response.status_code != 200:
            return None
        try:
            image = Image.open(io.BytesIO(response.content))
            image.load()
        except OSError:
            return None
        return image

    async def _download(self, request: Request) -> Response:
        name = request.query_params.get("f", "")
        if self.link_failures > 0 or name not in self.results:
            self.link_failures = max(0, self.link_failures - 1)
            self.downloads.append((time.monotonic(), name, 404))
            return Response("Not Found", status_code=404)
        self.downloads.append((time.monotonic(), name, 200))
        return Response(self.results[name], media_type="image/png")

    async def _deliver(self, url: str, job_id: str, base_url: str) -> None:
        job = self.jobs[job_id]
        await asyncio.sleep(self.webhook_delay_seconds)
        if self.mode == "slow":
            return
        body = {**self.finished(job, base_url), "asyncid": int(job_id)}
        assert self._client is not None
        for _ in range(self.webhook_deliveries):
            try:
                response = await self._client.post(
                    url, content=json.dumps(body), headers={"Content-Type": "application/json"}
                )
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            self.deliveries.append((time.monotonic(), url, status))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _mirror_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    ImageOps.mirror(image.convert("RGB")).save(out, format="PNG")
    return out.getvalue()
