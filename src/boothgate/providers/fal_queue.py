"""fal.ai's queue protocol spoken with httpx: submit → status → result, and cancel.

    POST {queue}/{model}          JSON input  → {"request_id", "status_url", "response_url", "cancel_url"}
    GET  status_url                           → 202 {"status": "IN_QUEUE" | "IN_PROGRESS", ...}
                                                200 {"status": "COMPLETED", ...}
    GET  response_url                         → the model's output (or an error with {"detail": ...})
    PUT  cancel_url                           → stop a request nobody waits for any more

The URLs the service returns are used exactly as given, but the key (`Authorization: Key …`) goes only
to the queue's own origin: an answer pointing elsewhere is refused rather than handed the key.
Why not `fal-client`: it fixes the scheme to https and reads its hosts from the environment at import
time, so neither a setting nor a loopback fake can point it elsewhere; and its retry loop ignores
Retry-After and the deadline.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from boothgate.deadline import Deadline
from boothgate.errors import BoothError, ProviderFailed, ProviderRefused
from boothgate.imaging.images import MIME, sniff
from boothgate.providers.openai_wire import retry_after_seconds

KEY_SETTING = "BOOTHGATE_FAL_API_KEY"
QUEUE_SETTING = "BOOTHGATE_FAL_QUEUE_URL"
CANCEL_SECONDS = 3.0
# Error types fal uses when a model's safety filter stopped the request.
REFUSAL_TYPES = frozenset({"content_policy_violation", "nsfw_content_detected"})


@dataclass(frozen=True)
class Submitted:
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


class Retryable(Exception):
    """Another attempt may succeed: 5xx, connection trouble, 429, or X-Fal-Retryable: true.
    `wait` is the pause the service asked for (None: none named)."""

    def __init__(self, note: str, wait: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(note)
        self.note = note
        self.wait = wait
        self.rate_limited = rate_limited


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def detail_text(body: object) -> str:
    """fal's `{"detail": ...}`: a string, or a list of {"loc", "msg", "type"} (FastAPI's shape)."""
    detail = body.get("detail", body.get("error", "")) if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)[:300]
    return " ".join(str(detail or "").split())[:300]


def detail_types(body: object) -> set[str]:
    detail = body.get("detail") if isinstance(body, dict) else None
    types = {str(item.get("type")) for item in detail if isinstance(item, dict)} if isinstance(detail, list) else set()
    if isinstance(body, dict) and body.get("error_type"):
        types.add(str(body["error_type"]))
    return types


def read_error(response: httpx.Response, model: str, step: str) -> BoothError | Retryable:
    """Map a fal error answer once: a booth error, or Retryable."""
    status = response.status_code
    try:
        body: object = response.json()
    except ValueError:
        body = response.text[:300]
    said = detail_text(body)
    note = f"{step} {status}"
    retryable = response.headers.get("x-fal-retryable", "").strip().lower()
    if detail_types(body) & REFUSAL_TYPES:
        return ProviderRefused(f"fal.ai's safety filter refused this photo or prompt ({said}).")
    if status in (401, 403):
        if "balance" in said.lower() or "locked" in said.lower():
            return ProviderFailed(
                f"fal.ai refused the request: {said}. Top up the fal.ai account (fal.ai/dashboard/billing).",
                code="provider_billing",
            )
        return ProviderFailed(
            f"fal.ai rejected the API key ({status}: {said}). Check {KEY_SETTING} on the settings page.",
            code="provider_auth",
        )
    if status == 404 and step == "submit":
        return ProviderFailed(
            f"fal.ai does not know the model {model!r} (404: {said}). Choose another model in the slot, or check "
            f"{QUEUE_SETTING}.",
            code="provider_model",
        )
    if retryable == "true" or (status >= 500 and retryable != "false"):
        return Retryable(note, retry_after_seconds(response.headers))
    if status == 429:
        return Retryable(note, retry_after_seconds(response.headers), rate_limited=True)
    return ProviderFailed(f"fal.ai rejected the request to {model} ({status}: {said}).")


class FalQueue:
    """One job's conversation with the queue. The deadline bounds every call."""

    def __init__(self, http: httpx.AsyncClient, queue_url: str, key: str) -> None:
        self.http = http
        self.queue_url = queue_url.strip().rstrip("/")
        self._headers = {"Authorization": f"Key {key}"}

    def _checked(self, url: object) -> str:
        if not isinstance(url, str) or origin(url) != origin(self.queue_url):
            raise ProviderFailed(
                f"fal.ai answered with an address outside {QUEUE_SETTING}; the key is not sent there.",
                code="provider_bad_response",
            )
        return url

    async def _call(self, method: str, url: str, deadline: Deadline, **kwargs: Any) -> httpx.Response:
        timeout = max(0.01, deadline.remaining())
        try:
            async with deadline.timeout():
                return await self.http.request(method, url, headers=self._headers, timeout=timeout, **kwargs)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.TimeoutException):
                raise
            raise Retryable(f"connection: {type(exc).__name__}") from exc

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderFailed("fal.ai sent an answer that is not JSON.", code="provider_bad_response") from exc
        if not isinstance(body, dict):
            raise ProviderFailed("fal.ai sent an unexpected answer.", code="provider_bad_response")
        return body

    async def submit(self, endpoint: str, arguments: dict[str, Any], deadline: Deadline) -> Submitted:
        response = await self._call("POST", f"{self.queue_url}/{endpoint}", deadline, json=arguments)
        if response.status_code >= 300:
            error = read_error(response, endpoint, "submit")
            raise error
        body = self._json(response)
        request_id = str(body.get("request_id") or "")
        if not request_id:
            raise ProviderFailed("fal.ai accepted the request but gave no request_id.", code="provider_bad_response")
        return Submitted(
            request_id,
            self._checked(body.get("status_url")),
            self._checked(body.get("response_url")),
            self._checked(body.get("cancel_url")),
        )

    async def status(self, submitted: Submitted, model: str, deadline: Deadline) -> dict[str, Any]:
        response = await self._call("GET", submitted.status_url, deadline)
        if response.status_code not in (200, 202):
            raise read_error(response, model, "status")
        return self._json(response)

    async def result(self, submitted: Submitted, model: str, deadline: Deadline) -> dict[str, Any]:
        response = await self._call("GET", submitted.response_url, deadline)
        if response.status_code != 200:
            raise read_error(response, model, "result")
        return self._json(response)

    async def cancel(self, submitted: Submitted) -> int | None:
        """`PUT cancel_url` with a short timeout of its own; never raises (it runs after the answer)."""
        try:
            response = await self.http.put(submitted.cancel_url, headers=self._headers, timeout=CANCEL_SECONDS)
        except httpx.HTTPError:
            return None
        return response.status_code

    async def download(self, url: str, deadline: Deadline) -> tuple[bytes, str]:
        """The result image: a data URI (sync mode) or a CDN link (fetched without the key)."""
        if url.startswith("data:"):
            head, _, payload = url.partition(",")
            try:
                data = base64.b64decode(payload, validate=True) if head.endswith(";base64") else payload.encode()
            except (binascii.Error, ValueError) as exc:
                raise ProviderFailed("fal.ai's image could not be decoded.", code="provider_bad_image") from exc
        else:
            try:
                async with deadline.timeout():
                    response = await self.http.get(url, timeout=max(0.01, deadline.remaining()))
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException):
                    raise
                raise Retryable(f"download: {type(exc).__name__}") from exc
            if response.status_code != 200:
                raise ProviderFailed(
                    f"fal.ai's result could not be downloaded (HTTP {response.status_code}).", code="provider_no_image"
                )
            data = response.content
        kind = sniff(data[:16])
        if kind is None:
            raise ProviderFailed("fal.ai answered with something that is not an image.", code="provider_bad_image")
        return data, MIME.get(kind, "image/png")
