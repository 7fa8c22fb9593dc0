"""Gemini API errors sorted into what the retry loop does with them.

`google.genai.errors.APIError` carries the HTTP `.code`, the RPC `.status` (e.g. "RESOURCE_EXHAUSTED"),
Gemini's `.message`, and `.details` = the whole JSON error body, `{"error": {..., "details": [...]}}`,
where a 429 carries `google.rpc.RetryInfo` with a `retryDelay` such as "47s". The job's error when the
loop runs out of time or tries (`out_of_time`, `summary`) is written here too.
"""

from __future__ import annotations

import re
from typing import Any

from google.genai import errors as genai_errors

from boothgate.errors import BoothError, DeadlineReached, ProviderFailed, RateLimited

KEY_SETTING = "BOOTHGATE_GEMINI_API_KEY"
MODEL_SETTING = "BOOTHGATE_GEMINI_MODEL"
BASE_URL_SETTING = "BOOTHGATE_GEMINI_BASE_URL"

# Worth another attempt after a pause: Gemini overloaded or failing inside.
TRANSIENT_CODES = frozenset({500, 502, 503, 504})
# Problems only the operator can fix: remembered in `provider.last_error` until a call succeeds.
OPERATOR_CODES = frozenset({"provider_auth", "provider_billing", "provider_model", "provider_account"})

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


# ErrorInfo reasons that say the key itself is the problem (not the model or the project's quota).
KEY_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED"}
)
# Request fields Gemini may refuse for a model (capabilities change faster than code): retried without.
DROPPABLE_FIELDS = {
    "imageSize": ("imagesize", "image_size", "image size"),
    "aspectRatio": ("aspectratio", "aspect_ratio", "aspect ratio"),
}


def is_bad_key(exc: genai_errors.APIError) -> bool:
    """401, or a key-specific reason. A 403 without one is "no access to this model", not a bad key."""
    if exc.code == 401 or _reasons(exc) & KEY_REASONS:
        return True
    message = (exc.message or "").lower()
    return exc.code == 400 and "api key" in message


def _quota_failures(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    violations: list[dict[str, Any]] = []
    for item in _detail_items(exc):
        if str(item.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            violations += [v for v in item.get("violations") or [] if isinstance(v, dict)]
    return violations


def is_free_tier(exc: genai_errors.APIError) -> bool:
    """A 429 that no wait will fix: the key's project has no paid quota for image models.

    Gemini says so by naming a free-tier quota metric / id in `QuotaFailure`, or `limit: 0` in the text.
    """
    if exc.code != 429:
        return False
    for violation in _quota_failures(exc):
        named = " ".join(str(violation.get(k, "")) for k in ("quotaMetric", "quotaId", "subject")).lower()
        if "free_tier" in named or "freetier" in named or str(violation.get("quotaValue", "")) == "0":
            return True
    return bool(re.search(r"\blimit:\s*0\b", exc.message or ""))


def refused_field(exc: genai_errors.APIError) -> str | None:
    """The image field a 400 INVALID_ARGUMENT names (imageSize / aspectRatio), or None."""
    if exc.code != 400 or (exc.status or "INVALID_ARGUMENT") != "INVALID_ARGUMENT" or is_bad_key(exc):
        return None
    said = [exc.message or ""]
    for item in _detail_items(exc):
        for violation in item.get("fieldViolations") or []:
            if isinstance(violation, dict):
                said.append(f"{violation.get('field', '')} {violation.get('description', '')}")
    text = " ".join(said).lower()
    for name, words in DROPPABLE_FIELDS.items():
        if any(word in text for word in words):
            return name
    return None


def free_tier_error() -> BoothError:
    return ProviderFailed(
        "Gemini: this key's project has no paid quota for image models (free tier, limit 0) — enable "
        f"billing for the project of the key in {KEY_SETTING} (Google AI Studio → Billing). Waiting does "
        "not help.",
        code="provider_billing",
    )


def fatal_error(exc: genai_errors.APIError, model: str, model_from_slot: bool) -> BoothError:
    """The booth-facing error for an answer that another attempt will not fix.

    The messages name the setting to change; none of them contains the key.
    """
    status = exc.status or ""
    said = _short(exc.message)
    where = "the slot's model option" if model_from_slot else f"{MODEL_SETTING} on the settings page"
    if is_free_tier(exc):
        return free_tier_error()
    if is_bad_key(exc):
        return ProviderFailed(
            f"Gemini rejected the API key ({exc.code} {status}: {said}). Check {KEY_SETTING} on the settings "
            "page: it must be a Gemini API key from Google AI Studio whose project has the "
            "Generative Language API enabled.",
            code="provider_auth",
        )
    if exc.code == 403:
        return ProviderFailed(
            f"Gemini: this key has no access to model {model!r} (403 {status}: {said}). Choose in {where} a "
            "model the settings page lists for this key, or ask Google for access.",
            code="provider_model",
        )
    if exc.code == 400 and status == "FAILED_PRECONDITION":
        return ProviderFailed(
            f"Gemini refused to serve this key ({status}: {said}). Enable billing for the Google Cloud "
            f"project of the key in {KEY_SETTING} (Google AI Studio → Billing), or use a key from a "
            "project and region where the Gemini API is available.",
            code="provider_billing",
        )
    if exc.code == 404:
        return ProviderFailed(
            f"Gemini does not offer the model {model!r} (any more) (404 {status}). Choose in {where} one of "
            f"the models the settings page lists for this key; if the name is right, check {BASE_URL_SETTING}.",
            code="provider_model",
        )
    return ProviderFailed(f"Gemini rejected the request ({exc.code} {status}: {said}).")


def describe(exc: genai_errors.APIError) -> str:
    """A short note for the job's list of failed attempts."""
    return f"{exc.code} {exc.status or ''}".strip()


def out_of_time(notes: dict[str, Any]) -> DeadlineReached | ProviderFailed | RateLimited:
    """No time for another attempt. When Gemini kept failing (5xx, connection) that is a provider
    failure (502); when its last answer was a rate limit, still the rate limit (429, the booth's
    "quota" answer, whether or not its retry delay was waited out first); only when it was merely slow
    is it the deadline (504)."""
    attempts = notes["attempts"]
    detail = f"{attempts} attempt{'s' * (attempts != 1)}: {summary(notes)}"
    problems = notes.get("problems", [])
    if problems and problems[-1].startswith("429"):
        return RateLimited(f"Gemini is rate-limiting this key and there is no time left for another try ({detail}).")
    if problems and problems[-1] != "no answer in time":
        return ProviderFailed(
            f"Gemini kept failing and there is no time left for another try ({detail}).",
            code="provider_unavailable",
        )
    return DeadlineReached(f"No image from Gemini before the deadline ({detail}).")


def summary(notes: dict[str, Any]) -> str:
    """The failed attempts in a few words, e.g. "NO_IMAGE ×3, 503 UNAVAILABLE"."""
    counts: dict[str, int] = {}
    for problem in notes.get("problems", []):
        counts[problem] = counts.get(problem, 0) + 1
    return ", ".join(f"{p} ×{n}" if n > 1 else p for p, n in counts.items()) or "none"


def rate_limit_message(delay: float | None) -> str:
    if delay is not None:
        return (
            f"Gemini's rate limit or quota is exhausted (429); it asks to wait {delay:g} s, more than the "
            "time left for this photo."
        )
    return (
        "Gemini's rate limit or quota is exhausted (429). Wait a minute, or raise the quota / enable "
        f"billing for the project of the key in {KEY_SETTING}."
    )
