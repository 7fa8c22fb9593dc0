"""What the OpenAI tab sends and how it reads the answers: sizes, instruction text, error sorting.

`images.edit` is one multipart POST (`/images/edits`); the SDK turns a list of input images into
repeated `image[]` parts. Which models accept a free WIDTHxHEIGHT and which accept `input_fidelity`
are settings (comma-separated model ids), never guessed from a model's name.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from dataclasses import dataclass

import openai

from boothgate.errors import BoothError, ProviderFailed, ProviderRefused, RateLimited
from boothgate.providers.base import Kind, PreparedImage
from boothgate.providers.gemini_wire import fill_template
from boothgate.settings import DEFAULT_TEMPLATES

KEY_SETTING = "BOOTHGATE_OPENAI_API_KEY"
MODEL_SETTING = "BOOTHGATE_OPENAI_MODEL"
BASE_URL_SETTING = "BOOTHGATE_OPENAI_BASE_URL"

# The three sizes every GPT Image model takes.
LANDSCAPE, PORTRAIT, SQUARE = "1536x1024", "1024x1536", "1024x1024"
# A photo this close to square gets a square result.
SQUARE_TOLERANCE = 1.1
# Free sizes: about as many pixels as the standard landscape size (price and time grow with pixels),
# sides divisible by 16, aspect between 1:3 and 3:1 (the API's limits).
FREE_SIZE_PIXELS = 1536 * 1024
FREE_SIZE_STEP = 16
FREE_SIZE_MAX_RATIO = 3.0
# Worth another attempt after a pause: OpenAI overloaded or failing inside.
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
OPERATOR_CODES = frozenset({"provider_auth", "provider_model", "provider_billing"})


def model_set(setting: str) -> frozenset[str]:
    """A comma-separated settings value as a set of model ids."""
    return frozenset(part.strip() for part in setting.split(",") if part.strip())


def instruction_text(kind: Kind, prompt: str, instruction: str | None) -> str:
    """An upstream instruction (DeepSeek) verbatim, or the photobooth template of the kind filled in.

    The templates speak of "the first image" (the photo) and "the second image" (the reference), the
    order in which the images go out."""
    if instruction:
        return instruction
    return fill_template(DEFAULT_TEMPLATES[kind.value], prompt)


def input_files(
    photo: PreparedImage, reference: PreparedImage | None, more: list[PreparedImage] | None = None
) -> list[tuple[str, bytes, str]]:
    """The images as (filename, bytes, MIME) tuples; the photo first, then the references in order."""
    files = [(_filename("photo", photo.mime), photo.data, photo.mime)]
    refs = ([reference] if reference is not None else []) + list(more or [])
    for n, image in enumerate(refs, start=1):
        stem = "reference" if n == 1 else f"reference{n}"
        files.append((_filename(stem, image.mime), image.data, image.mime))
    return files


def _filename(stem: str, mime: str) -> str:
    return f"{stem}.{ {'image/png': 'png', 'image/webp': 'webp'}.get(mime, 'jpg') }"


def choose_size(option: str, model: str, width: int, height: int, free_size_models: frozenset[str]) -> str:
    """The `size` to ask for. "match_photo": the photo's exact shape on models that take free sizes,
    else the standard size of the photo's orientation. Anything else is sent as chosen."""
    if option != "match_photo":
        return option
    ratio = width / height
    if model in free_size_models:
        return free_size(ratio)
    if ratio > SQUARE_TOLERANCE:
        return LANDSCAPE
    if ratio < 1 / SQUARE_TOLERANCE:
        return PORTRAIT
    return SQUARE


def free_size(ratio: float) -> str:
    """WIDTHxHEIGHT with about FREE_SIZE_PIXELS, the given aspect ratio, both sides divisible by 16."""
    ratio = min(max(ratio, 1 / FREE_SIZE_MAX_RATIO), FREE_SIZE_MAX_RATIO)
    height = math.sqrt(FREE_SIZE_PIXELS / ratio)
    width = height * ratio
    step = FREE_SIZE_STEP
    return f"{max(step, round(width / step) * step)}x{max(step, round(height / step) * step)}"


# --- errors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sorted:
    """What the retry loop does with a failed call: `retry_after` seconds to wait (None = do not
    retry), or `error` to raise."""

    note: str
    retry_after: float | None = None
    error: BoothError | None = None


def error_code(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error", body)
    code = inner.get("code") if isinstance(inner, dict) else None
    return str(code or getattr(exc, "code", None) or "")


def _said(exc: openai.APIStatusError, key: str) -> str:
    text = " ".join(str(exc.message or "").split())
    if key:
        text = text.replace(key, "***")  # some error texts echo part of the key
    return text[:200]


def retry_after_seconds(headers: object, now: float | None = None) -> float | None:
    """The wait a 429/503 asks for: `retry-after-ms`, `retry-after` in seconds or as an HTTP date."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    millis = get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    if re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def sort_status_error(exc: openai.APIStatusError, model: str, model_from_slot: bool, key: str) -> Sorted:
    """Map an HTTP error answer once: what to tell the booth, and whether another attempt may help."""
    status = exc.status_code
    code = error_code(exc)
    said = _said(exc, key)
    note = f"{status} {code}".strip()
    if status == 400 and code == "moderation_blocked":
        return Sorted(note, error=ProviderRefused(f"OpenAI's safety system refused this photo or prompt ({said})."))
    if status == 401:
        return Sorted(
            note,
            error=ProviderFailed(
                f"OpenAI rejected the API key (401: {said}). Check {KEY_SETTING} on the settings page.",
                code="provider_auth",
            ),
        )
    if status == 403:
        return Sorted(
            note,
            error=ProviderFailed(
                f"OpenAI refused this key access to {model!r} (403: {said}). GPT Image models need a verified "
                f"organisation: verify it at platform.openai.com, or use another key in {KEY_SETTING}.",
                code="provider_auth",
            ),
        )
    if status == 404 or code == "model_not_found":
        where = "the slot's model option" if model_from_slot else f"{MODEL_SETTING} on the settings page"
        return Sorted(
            note,
            error=ProviderFailed(
                f"OpenAI does not know the model {model!r} ({status} {code}). Set {where} to a current image "
                f"model such as gpt-image-2; if the name is right, check {BASE_URL_SETTING}.",
                code="provider_model",
            ),
        )
    if status == 429:
        if code == "insufficient_quota" or "billing" in said.lower():
            return Sorted(
                note,
                error=RateLimited(
                    f"OpenAI says the account has no quota left ({said}). Add credit at platform.openai.com → Billing.",
                    code="provider_billing",
                ),
            )
        return Sorted(note, retry_after=retry_after_seconds(exc.response.headers))
    if status in TRANSIENT_STATUSES:
        return Sorted(note, retry_after=retry_after_seconds(exc.response.headers) or 0.0)
    return Sorted(note, error=ProviderFailed(f"OpenAI rejected the request ({status} {code}: {said})."))
