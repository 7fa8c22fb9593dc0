"""Gemini request building and answer reading: pure functions over `google.genai.types`.

Kept apart from the provider's retry loop so each rule (which aspect ratio, which models take an image
size, which part is the result, what counts as a refusal) is small and tested on its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from google.genai import types

from boothgate.prices import by_prefix
from boothgate.providers.base import Kind, PreparedImage

# The ratios `imageConfig.aspectRatio` accepts.
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_SIZES: tuple[str, ...] = ("1K", "2K", "4K")

# The account is blocked for policy violations: only the operator can fix it, no retry helps.
ACCOUNT_BLOCKED_REASONS = frozenset({"PUP_LIMITED_DISABLED"})
# A candidate stopped for one of these reasons was refused on content grounds: retrying the same photo
# will not help, so the booth gets 502 provider_refused at once.
REFUSAL_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "RECITATION",
        "IMAGE_RECITATION",
        "SPII",
        "MODEL_ARMOR",
    }
)


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The supported ratio closest to width:height (compared on a log scale, so 2:1 and 1:2 are as far
    from 1:1)."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(ASPECT_RATIOS, key=distance)


def sizes_for(model: str, table: dict[str, list[str]]) -> list[str] | None:
    """The image sizes `model` takes according to the capability table (model-id prefix → sizes), or
    None when the table does not name it (then the slot's size is sent and a refusal is learned from)."""
    sizes = by_prefix(table, model)
    return list(sizes) if sizes is not None else None


def fill_template(template: str, prompt: str) -> str:
    """The template with the slot prompt in place of `{prompt}` (appended when the template has none).

    Plain replacement, not `str.format`: operators' templates may contain other braces.
    """
    prompt = prompt.strip()
    text = template.replace("{prompt}", prompt) if "{prompt}" in template else f"{template} {prompt}"
    # An empty prompt leaves a double space behind; tidy spaces but keep the operator's line breaks.
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def instruction_text(kind: Kind, prompt: str, templates: dict[Kind, str], instruction: str | None) -> str:
    """What the model is told: an upstream instruction verbatim, or this kind's template filled in."""
    if instruction:
        return instruction
    return fill_template(templates[kind], prompt)


def build_contents(
    photo: PreparedImage, reference: PreparedImage | None, text: str, more: list[PreparedImage] | None = None
) -> list[types.Content]:
    """One user turn: the photo, the references in order, then the text (images first, as the templates
    say "the first image ... the second image"; a prompt may name "image 3" and on)."""
    parts = [types.Part.from_bytes(data=photo.data, mime_type=photo.mime)]
    for image in ([reference] if reference is not None else []) + list(more or []):
        parts.append(types.Part.from_bytes(data=image.data, mime_type=image.mime))
    parts.append(types.Part.from_text(text=text))
    return [types.Content(role="user", parts=parts)]


@dataclass(frozen=True)
class ImageChoice:
    """The image settings sent with a request (recorded in the job notes)."""

    aspect_ratio: str | None
    image_size: str | None

    def without(self, field_name: str) -> ImageChoice:
        """The same choice without a field Gemini refused for this model."""
        if field_name == "imageSize":
            return ImageChoice(self.aspect_ratio, None)
        return ImageChoice(None, self.image_size)


def choose_image(
    model: str,
    photo: PreparedImage,
    aspect_ratio: str,
    image_size: str,
    sizes: list[str] | None = None,
    refused: frozenset[str] = frozenset(),
    shape: tuple[int, int] | None = None,
) -> ImageChoice:
    """The slot's ratio, or on "auto" the one nearest the result's shape (the photo's unless the slot fixes
    another); the slot's size unless the capability table (`sizes`) says the model does not take it.
    `refused` = fields this model answered 400 to."""
    width, height = shape or (photo.width, photo.height)
    ratio: str | None = nearest_aspect_ratio(width, height) if aspect_ratio == "auto" else aspect_ratio
    size: str | None = image_size if image_size != "auto" else None
    if size is not None and sizes is not None and size not in sizes:
        size = None
    if "imageSize" in refused:
        size = None
    if "aspectRatio" in refused:
        ratio = None
    return ImageChoice(ratio, size)


def build_config(choice: ImageChoice, timeout_seconds: float) -> types.GenerateContentConfig:
    """Generation settings for one attempt. `timeout_seconds` becomes the SDK's per-call timeout (it
    counts milliseconds) and, through the SDK, the `X-Server-Timeout` header, so Gemini itself gives up
    when the booth would."""
    return types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        candidate_count=1,
        image_config=types.ImageConfig(aspect_ratio=choice.aspect_ratio, image_size=choice.image_size),
        # One HTTP call per attempt: the retry loop owns retries and the deadline.
        automatic_continuation=False,
        http_options=types.HttpOptions(timeout=max(1, int(timeout_seconds * 1000))),
    )


# --- reading the answer ------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one 200 answer amounts to: an image, a refusal, or neither (worth another try)."""

    data: bytes | None = None
    mime: str | None = None
    refusal: str | None = None  # plain operator/guest-facing text
    account_blocked: str | None = None  # operator-facing: the account itself may not generate
    missing: str | None = None  # why there is no image, e.g. "NO_IMAGE" or "text only"


def _name(value: Any) -> str:
    """An SDK enum or a raw string (the SDK keeps values it does not know) as its plain name."""
    return str(getattr(value, "value", value) or "")


def read_answer(response: types.GenerateContentResponse) -> Answer:
    """The last image part that is not a thought, or why there is none."""
    feedback = response.prompt_feedback
    blocked = _name(feedback.block_reason) if feedback else ""
    if blocked and blocked != "BLOCKED_REASON_UNSPECIFIED":
        return Answer(refusal=f"Gemini refused the request before generating anything (blockReason {blocked}).")
    if not response.candidates:
        return Answer(missing="no candidates")
    candidate = response.candidates[0]
    image = last_image(candidate)
    if image is not None:
        return Answer(data=image.data, mime=image.mime_type or "image/png")
    reason = _name(candidate.finish_reason)
    if reason in ACCOUNT_BLOCKED_REASONS:
        return Answer(
            account_blocked=f"Gemini has blocked this key's account for policy violations (finishReason {reason}): "
            "no image will come until Google lifts it — check the account in Google AI Studio or use another key."
        )
    if reason in REFUSAL_REASONS:
        detail = f" {candidate.finish_message}" if candidate.finish_message else ""
        return Answer(refusal=f"Gemini's safety filter stopped the image (finishReason {reason}).{detail}")
    has_text = any(part.text for part in _parts(candidate))
    return Answer(missing=reason if reason and reason != "STOP" else ("text only" if has_text else "empty answer"))


def _parts(candidate: types.Candidate) -> list[types.Part]:
    return list(candidate.content.parts or []) if candidate.content else []


def last_image(candidate: types.Candidate) -> types.Blob | None:
    """Pro models emit draft images marked `thought`; the answer is the last one that is not."""
    for part in reversed(_parts(candidate)):
        blob = part.inline_data
        if part.thought or blob is None or not blob.data:
            continue
        if (blob.mime_type or "image/png").startswith("image/"):
            return blob
    return None


USAGE_FIELDS = {
    "prompt_token_count": "prompt_tokens",
    "candidates_token_count": "output_tokens",
    "thoughts_token_count": "thought_tokens",
    "total_token_count": "total_tokens",
}


def add_usage(total: dict[str, int], response: types.GenerateContentResponse) -> None:
    """Add one answer's `usageMetadata` to the job's running totals."""
    usage = response.usage_metadata
    if usage is None:
        return
    for field_name, key in USAGE_FIELDS.items():
        value = getattr(usage, field_name, None)
        if value:
            total[key] = total.get(key, 0) + int(value)
