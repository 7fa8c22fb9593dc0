"""What a change to a slot may hold, and the checks a change passes before it is stored.

The card's PUT body (`SlotUpdate`) with its nested parts (the guest copy's `ShareOptions`, moderation),
and `SlotOptionsInvalid`, the 422 that names the field the operator must fix.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from boothgate.providers.base import Kind
from boothgate.run.moderation import ModerationOptions
from boothgate.run.shaping import normal_size


class ShareOptions(BaseModel):
    """A slot's `share` field: whether the guest page's QR code is printed, where, how large."""

    model_config = ConfigDict(extra="forbid")

    qr: bool = False
    corner: Literal["bottom_right", "bottom_left", "top_right", "top_left"] = "bottom_right"
    # Of the print's short side, quiet zone included; 0.08 is the least a phone reads from a 10×15 cm print.
    size: float = Field(0.12, ge=0.08, le=0.4)
    label: str = Field("", max_length=40)


class SlotUpdate(BaseModel):
    """A partial change to a slot; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    name: str | None = Field(None, max_length=200)
    kind: Kind | None = None
    prompt: str | None = Field(None, max_length=8000)
    output_format: Literal["jpeg", "png"] | None = None
    on_failure: Literal["error", "original"] | None = None
    options: dict[str, Any] | None = None
    # "" clears the fallback; otherwise "provider/number" of another slot.
    fallback: str | None = Field(None, max_length=40)
    result_shape: Literal["match_photo", "as_returned", "fixed"] | None = None
    result_size: str | None = Field(None, max_length=16)
    moderation: dict[str, Any] | None = None
    # The guest's copy (issue 30): the QR on the print, and how long the AI may finish after a fallback.
    share: ShareOptions | None = None
    late_result_seconds: int | None = Field(None, ge=0, le=600)


class SlotOptionsInvalid(ValueError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid options")
        self.errors = errors


def checked_size(text: str | None) -> str | None:
    try:
        return normal_size(text)
    except ValueError as exc:
        raise SlotOptionsInvalid([{"loc": ["result_size"], "msg": str(exc), "type": "value_error"}]) from exc


def check_shape(shape: str | None, size: str | None) -> None:
    if shape == "fixed" and not size:
        raise SlotOptionsInvalid(
            [{"loc": ["result_size"], "msg": "A fixed result shape needs a size, e.g. 1800x1200.", "type": "missing"}]
        )


def validate_moderation(raw: dict[str, Any]) -> dict[str, Any]:
    """A slot's moderation settings, complete, or SlotOptionsInvalid naming the bad field."""
    try:
        return ModerationOptions.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        raise SlotOptionsInvalid(
            [{"loc": ["moderation", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from exc
