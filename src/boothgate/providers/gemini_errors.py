"""Gemini API errors sorted into what the retry loop does with them.

`google.genai.errors.APIError` carries the HTTP `.code`, the RPC `.status` (e.g. "RESOURCE_EXHAUSTED"),
Gemini's `.message`, and `.details` = the whole JSON error body, `{"error": {..., "details": [...]}}`,
where a 429 carries `google.rpc.RetryInfo` with a `retryDelay` such as "47s".
"""

from __future__ import annotations

import re
from typing import Any

from google.genai import errors as genai_errors

from boothgate.errors import BoothError, ProviderFailed

KEY_SETTING = "BOOTHGATE_GEMINI_API_KEY"
MODEL_SETTING = "BOOTHGATE_GEMINI_MODEL"
BASE_URL_SETTING = "BOOTHGATE_GEMINI_BASE_URL"

# Worth another attempt after a pause: Gemini overloaded or failing inside.
TRANSIENT_CODES = frozenset({500, 502, 503, 504})
# Problems only the operator can fix: remembered in `provider.last_error` until a call succeeds.
OPERATOR_CODES = frozenset({"provider_auth", "provider_billing", "provider_model"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _error_body(exc: genai_errors.APIError) -> dict[str, Any]:
    body = exc.details if isinstance(exc.details, dict) else {}
    inner = body.get("error", body)
    return inner if isinstance(inner, dict) else {}


def _detail_items(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    items = _error_body(exc).get("details") or []
    return [item for item in items if isinstance(item, dict)]


def retry_delay_seconds(exc: genai_errors.APIError) -> float | None:
    """The wait a 429 asks for (`google.rpc.RetryInfo.retryDelay`), or None when it names none."""
    for item in _detail_items(exc):
        if not str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        delay = item.get("retryDelay")
        if isinstance(delay, str) and (match := _DURATION.match(delay)):
            return float(match.group(1))
        if isinstance(delay, dict):  # the protobuf JSON form {"seconds": "47", "nanos": 0}
            return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
    return None


def _reasons(exc: genai_errors.APIError) -> set[str]:
    return {str(item.get("reason")) for item in _detail_items(exc) if item.get("reason")}


def _short(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_bad_key(exc: genai_errors.APIError) -> bool:
    if exc.code in (401, 403):
        return True
    message = (exc.message or "").lower()
    return exc.code == 400 and ("API_KEY_INVALID" in _reasons(exc) or "api key" in message)


def fatal_error(exc: genai_errors.APIError, model: str, model_from_slot: bool) -> BoothError:
    """The booth-facing error for an answer that another attempt will not fix.

    The messages name the setting to change; none of them contains the key.
    """
    status = exc.status or ""
    said = _short(exc.message)
    if is_bad_key(exc):
        return ProviderFailed(
            f"Gemini rejected the API key ({exc.code} {status}: {said}). Check {KEY_SETTING} on the settings "
            "page: it must be a Gemini API key from Google AI Studio whose project has the "
            "Generative Language API enabled.",
            code="provider_auth",
        )
    if exc.code == 400 and status == "FAILED_PRECONDITION":
        return ProviderFailed(
            f"Gemini refused to serve this key ({status}: {said}). Enable billing for the Google Cloud "
            f"project of the key in {KEY_SETTING} (Google AI Studio → Billing), or use a key from a "
            "project and region where the Gemini API is available.",
            code="provider_billing",
        )
    if exc.code == 404:
        where = "the slot's model option" if model_from_slot else f"{MODEL_SETTING} on the settings page"
        return ProviderFailed(
            f"Gemini does not know the model {model!r} (404 {status}). Set {where} to a current image "
            f"model such as gemini-3.1-flash-image or gemini-3-pro-image; if the name is right, check "
            f"{BASE_URL_SETTING}.",
            code="provider_model",
        )
    return ProviderFailed(f"Gemini rejected the request ({exc.code} {status}: {said}).")


def describe(exc: genai_errors.APIError) -> str:
    """A short note for the job's list of failed attempts."""
    return f"{exc.code} {exc.status or ''}".strip()
