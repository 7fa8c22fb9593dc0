"""Turbotext's wire protocol: form-encoded POSTs, the shapes of its answers, and the result download.

Everything here is bounded by the job's deadline: each call gets an httpx timeout no longer than the
time left and runs inside `deadline.timeout()`, because httpx timeouts are per read, not per request.
Only the API calls carry the key; the result link is fetched without it (it may point anywhere).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from boothgate.deadline import Deadline
from boothgate.errors import DeadlineReached, ProviderFailed, ProviderRefused, RateLimited
from boothgate.imaging.images import MIME, sniff
from boothgate.providers.openai_wire import retry_after_seconds

log = logging.getLogger(__name__)

KEY_ENV = "BOOTHGATE_TURBOTEXT_API_KEY"
# One call never waits longer than this, so a hung create_queue still leaves time to retry it.
CALL_TIMEOUT_SECONDS = 15.0
# Result images are a few MB at most; a bigger answer is not an image we want.
MAX_RESULT_BYTES = 40 * 1024 * 1024
ERROR_TEXT_LIMIT = 300


# Turbotext answers HTTP 200 `{"success": false, "error": "<text>"}` even for a refused key or an empty
# balance, and documents no codes; these words in the text tell the operator's problems from a failed job.
# (Lower-case fragments, Russian and English; a text matching none is an ordinary provider failure.)
AUTH_WORDS = ("ключ", "api key", "apikey", "api_key", "токен", "token", "авториз", "unauthor", "доступ запрещ")
BILLING_WORDS = ("баланс", "средств", "оплат", "тариф", "balance", "insufficient", "funds", "credit", "кредит")


def failure(answer: Mapping[str, Any]) -> ProviderFailed:
    """The error for a `success: false` answer: provider_auth / provider_billing when the text says the
    key or the balance is the problem (the operator must act), else an ordinary provider failure."""
    text = error_text(answer)
    lowered = text.lower()
    if any(word in lowered for word in BILLING_WORDS):
        return ProviderFailed(
            f"Turbotext refused for lack of funds or tariff: {text}. Top up the balance or check the tariff "
            "(API access needs the paid tariff).",
            code="provider_billing",
        )
    if any(word in lowered for word in AUTH_WORDS):
        return ProviderFailed(
            f"Turbotext refused the API key: {text}. Check {KEY_ENV} on the settings page.",
            code="provider_auth",
        )
    return ProviderFailed(f"Turbotext failed: {text}")


class Transient(Exception):
    """A failure worth asking again about (HTTP 5xx, connection trouble) while time remains."""


def site_of(base_url: str) -> str:
    """`https://www.turbotext.ru/api_ai` → `https://www.turbotext.ru/` (relative result links join here)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/"


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true") or value == 1


def is_pending(answer: Mapping[str, Any]) -> bool:
    """`action: reconnect` means "not ready, ask again" — whatever `success` says beside it."""
    return answer.get("action") == "reconnect"


def _data(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    data = answer.get("data")
    return data if isinstance(data, Mapping) else {}


def error_text(answer: Mapping[str, Any]) -> str:
    text = answer.get("error") or answer.get("message") or ""
    text = str(text).strip()[:ERROR_TEXT_LIMIT]
    return text or "no reason given"


def result_link(answer: Mapping[str, Any], site: str) -> str | None:
    """Where the finished image is: top-level `uploaded_image`, then `data.uploaded_image`, then
    `data.image[0]` (possibly relative to the site)."""
    data = _data(answer)
    candidates: list[Any] = [answer.get("uploaded_image"), data.get("uploaded_image")]
    image = data.get("image")
    candidates.append(image[0] if isinstance(image, list) and image else image)
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return urljoin(site, candidate.strip())
    return None


def finished_link(answer: Mapping[str, Any], site: str) -> str | None:
    """The result link of a finished answer, or None while it is pending.

    Raises ProviderRefused when moderation refused the content and ProviderFailed when Turbotext
    reports a failure or finishes without an image.
    """
    if is_pending(answer):
        return None
    if _truthy(answer.get("forbidden_content")) or _truthy(_data(answer).get("forbidden_content")):
        raise ProviderRefused("Turbotext's moderation refused this photo (forbidden content).")
    if answer.get("success") is not True:
        raise failure(answer)
    link = result_link(answer, site)
    if link is None:
        raise ProviderFailed("Turbotext finished without a result image.")
    return link


class TurbotextWire:
    """Calls one Turbotext method endpoint and downloads results, within a deadline."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.site = site_of(self.base_url)
        self._api_key = api_key

    async def call(self, method: str, fields: Mapping[str, str], deadline: Deadline) -> dict[str, Any]:
        """POST `fields` to `{base}/{method}`; the answer as a dict.

        Raises Transient (5xx, network), ProviderFailed (auth, other HTTP errors, not JSON),
        RateLimited (429), DeadlineReached.
        """
        url = f"{self.base_url}/{method}"
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        try:
            async with deadline.timeout():
                response = await self.http.post(url, data=dict(fields), headers=headers, timeout=_timeout(deadline))
        except TimeoutError as exc:
            raise DeadlineReached("Turbotext did not answer before the deadline.") from exc
        except httpx.HTTPError as exc:
            # The exception text may carry the URL but never the key (it is only in a header).
            raise Transient(f"{type(exc).__name__} calling Turbotext {method}") from exc
        return _answer(response, method)

    async def download(self, link: str, deadline: Deadline) -> tuple[bytes, str]:
        """The result image behind `link` as (bytes, mime); one retry when the link fails."""
        try:
            return await self._download_once(link, deadline)
        except Transient as exc:
            log.warning("turbotext result link failed once (%s); retrying", exc)
            if not await deadline.sleep(0.3):
                raise ProviderFailed(f"Turbotext's result could not be downloaded: {exc}.") from exc
        try:
            return await self._download_once(link, deadline)
        except Transient as exc:
            raise ProviderFailed(f"Turbotext's result could not be downloaded: {exc}.") from exc

    async def _download_once(self, link: str, deadline: Deadline) -> tuple[bytes, str]:
        try:
            async with deadline.timeout():
                response = await self.http.get(link, timeout=_timeout(deadline), follow_redirects=True)
        except TimeoutError as exc:
            raise DeadlineReached("Turbotext's result did not download before the deadline.") from exc
        except httpx.HTTPError as exc:
            raise Transient(type(exc).__name__) from exc
        if response.status_code != 200:
            raise Transient(f"HTTP {response.status_code}")
        data = response.content
        kind = sniff(data[:16])
        if kind not in ("jpeg", "png", "webp") or len(data) > MAX_RESULT_BYTES:
            raise Transient("the link did not give an image")
        return data, MIME[kind]


def _timeout(deadline: Deadline) -> httpx.Timeout:
    remaining = deadline.remaining()
    if remaining <= 0:
        raise DeadlineReached("The deadline passed before Turbotext answered.")
    return httpx.Timeout(min(remaining, CALL_TIMEOUT_SECONDS))


def _answer(response: httpx.Response, method: str) -> dict[str, Any]:
    status = response.status_code
    if status in (401, 403):
        raise ProviderFailed(
            f"Turbotext rejected the API key (HTTP {status}): check {KEY_ENV} on the settings page "
            "(API access needs the paid tariff).",
            code="provider_auth",
        )
    if status == 429:
        raise RateLimited(
            "Turbotext is limiting requests; try again in a moment.", wait=retry_after_seconds(response.headers)
        )
    if status >= 500:
        raise Transient(f"HTTP {status} from Turbotext {method}")
    if status != 200:
        raise ProviderFailed(f"Turbotext answered HTTP {status} to {method}.")
    try:
        answer = json.loads(response.content)
    except ValueError as exc:
        raise ProviderFailed(f"Turbotext answered {method} with something that is not JSON.") from exc
    if not isinstance(answer, dict):
        raise ProviderFailed(f"Turbotext answered {method} with JSON that is not an object.")
    return answer


async def pause(deadline: Deadline, seconds: float) -> bool:
    """Sleep `seconds` when that still leaves time for another call; False when it would not."""
    if not deadline.fits(seconds + 0.2):
        return False
    await asyncio.sleep(seconds)
    return True
