"""The offline tab (`local`): background, styles and face swap on this machine's CPU, no key, no internet.

The mechanics live in `boothgate.local`; this module is the provider contract around them: options,
whether the engine can run here, sizes from settings, and one call on the image workers bounded by the
deadline. It is also the usual fallback of cloud slots, so it never needs the network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from boothgate.errors import BoothError, DeadlineReached, ProviderFailed, ProviderNotConfigured
from boothgate.local import engine, models
from boothgate.providers.base import (
    KINDS_NEEDING_REFERENCE,
    CheckResult,
    Kind,
    Provider,
    ProviderRequest,
    ProviderResult,
)

T = TypeVar("T")

Style = Literal["warm_film", "teal_orange", "faded", "noir", "sepia", "hdr", "comic"]

# Booth cameras shoot 3:2: preparing photos to this share of long side² gives a 3:2 photo exactly the
# configured long side (and lets JPEG decoding scale by 1/2 or 1/4); other shapes come out a little smaller.
THREE_TWO = 2 / 3


# The card shows each option only on slots of the kinds it applies to (issue 22).
BACKGROUND_ONLY: dict[str, Any] = {"kinds": ["background"]}
# The background kind's key and placement: the card shows them beside a live preview (issue 24).
BACKGROUND_OPTIONS = ("backdrop", "key_tolerance", "key_feather", "key_spill", "subject_position",
                      "subject_scale", "safe_margin")  # fmt: skip


class LocalOptions(BaseModel):
    """Slot options of the offline tab."""

    model_config = ConfigDict(extra="forbid")

    style: Style = Field(
        default="warm_film",
        description="The offline look: a colour grade (warm film, cinema, faded print), noir or sepia, HDR "
        "detail, or a comic drawing. The text prompt is not used.",
        json_schema_extra={"kinds": ["prompt"]},
    )
    backdrop: Literal["auto", "green_screen", "blue_screen", "any_wall"] = Field(
        default="auto",
        description="A green or blue screen is cut out by its colour, the cleanest result: hair, glasses and "
        "held things stay. “Any wall”: a person model finds the people. “Auto”: the screen when the photo's "
        "border shows one, else the model.",
        json_schema_extra=BACKGROUND_ONLY,
    )
    key_tolerance: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Higher cuts out an unevenly lit screen more surely; lower is gentler on fine hair.",
        json_schema_extra=BACKGROUND_ONLY,
    )
    key_feather: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="How soft the guest's edge is.",
        json_schema_extra=BACKGROUND_ONLY,
    )
    key_spill: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="How much of the screen's green (or blue) glow on hair and shoulders is taken out.",
        json_schema_extra=BACKGROUND_ONLY,
    )
    subject_position: Literal["keep", "left", "center", "right"] = Field(
        default="keep",
        description="Where the guest stands on the new background (feet on the bottom of the safe area); "
        "“as in the photo”: where the camera saw them.",
        json_schema_extra=BACKGROUND_ONLY,
    )
    subject_scale: float = Field(
        default=1.0,
        ge=0.3,
        le=1.5,
        description="1 is as in the photo; smaller makes the guest smaller on the background.",
        json_schema_extra=BACKGROUND_ONLY,
    )
    safe_margin: float = Field(
        default=0.0,
        ge=0.0,
        le=0.3,
        description="Share of each side kept free (for a frame or a caption).",
        json_schema_extra=BACKGROUND_ONLY,
    )


class LocalProvider(Provider):
    name = "local"
    label = "Offline"
    kinds = frozenset(Kind)
    # CPU time grows with pixels; past this a result is not sharper on a 6×4 print, only later.
    max_input_pixels = 16_000_000
    Options = LocalOptions
    paid = False  # this machine's CPU: an event's budget never stops it

    def problem(self) -> str | None:
        return models.problem()

    def estimated_cost_usd(self, options: dict[str, Any]) -> float | None:
        """Free: it runs on this machine (the rehearsal calls these slots free, issue 22)."""
        return 0.0

    def input_pixels(self) -> int:
        """The photo is prepared at the result's size (the offline result is made at the photo's size)."""
        long_side = self.settings.local_output_long_side_pixels
        return min(self.max_input_pixels, round(long_side * long_side * THREE_TWO))

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["engine"] = f"mediapipe {models.MEDIAPIPE_VERSION} + OpenCV, on this machine"
        described["output_long_side_pixels"] = self.settings.local_output_long_side_pixels
        return described

    async def check(self) -> CheckResult:
        """Load the models on an image worker and run each once: proves the engine works here, and the
        first guest photo does not pay for the loading."""
        started = time.monotonic()
        reason = models.problem()
        if reason is None:
            try:
                await self._on_worker(None, models.warm)
            except models.EngineUnavailable as exc:
                reason = exc.message
        seconds = round(time.monotonic() - started, 3)
        if reason is not None:
            return CheckResult(False, reason, seconds)
        return CheckResult(True, "The offline engine is ready: its models are loaded.", seconds)

    async def run(self, request: ProviderRequest) -> ProviderResult:
        reason = models.problem()
        if reason is not None:
            raise models.EngineUnavailable(reason)
        options = request.options
        if not isinstance(options, LocalOptions):
            options = LocalOptions.model_validate(options.model_dump())
        if request.kind in KINDS_NEEDING_REFERENCE and request.reference is None:
            raise ProviderNotConfigured(
                f"An offline {request.kind} slot needs a reference image.", code="slot_incomplete"
            )
        job = engine.Job(
            kind=request.kind.value,
            photo=request.photo.data,
            reference=request.reference.data if request.reference is not None else None,
            style=options.style,
            long_side=self.settings.local_output_long_side_pixels,
            quality=self.settings.jpeg_quality,
            min_face_pixels=self.settings.local_face_swap_min_face_pixels,
            backdrop=options.backdrop,
            key_tolerance=options.key_tolerance,
            key_feather=options.key_feather,
            key_spill=options.key_spill,
            subject_position=options.subject_position,
            subject_scale=options.subject_scale,
            safe_margin=options.safe_margin,
        )
        try:
            async with request.deadline.timeout():
                data, notes = await self._on_worker(request.deadline.at, engine.run, job)
        except TimeoutError as exc:
            raise DeadlineReached("The offline engine did not finish before the deadline.") from exc
        except models.EngineUnavailable as exc:
            self.last_error = exc.message
            raise
        except BoothError:
            raise  # a refusal with its reason (no face, face too small, ...)
        except Exception as exc:  # an OpenCV or mediapipe failure is this provider's failure: a fallback may help
            raise ProviderFailed(
                f"The offline engine failed: {type(exc).__name__}: {exc}", code="local_engine_failed"
            ) from exc
        self.last_error = None
        notes.update(engine="local", cost_usd=0.0)
        return ProviderResult(data, "image/jpeg", notes)

    async def _on_worker(self, deadline: float | None, func: Callable[..., T], *args: object) -> T:
        images = self.context.images
        if images is None:
            return await asyncio.to_thread(func, *args)
        return await images.run(deadline, func, *args)


PROVIDER = LocalProvider
