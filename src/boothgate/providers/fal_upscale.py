"""AI upscale on fal (seed 003's "generate small, enlarge to the print size"), and what it costs.

A failed or skipped upscale keeps the result as it is (the shaping step resamples it as before); one that
ran is paid, so its cost goes into the job's notes (`upscale_cost_usd`) and the job's cost.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from PIL import Image

from boothgate.errors import BoothError
from boothgate.imaging.shape import capped_size
from boothgate.providers import fal_models as models
from boothgate.providers.base import ProviderRequest
from boothgate.providers.fal_options import FalOptions
from boothgate.providers.fal_queue import Retryable
from boothgate.settings import Settings

# The largest factor asked of an upscaler (fal's clarity-upscaler takes up to 4); a result needing more is
# enlarged ×4 and shaping resamples the rest.
MAX_FACTOR = 4
# One fal request (`FalProvider._attempt` on the job's queue): call, deadline, notes → (bytes, mime).
Attempt = Callable[..., Awaitable[tuple[bytes, str]]]


async def upscale(
    attempt: Attempt, settings: Settings, options: FalOptions, data: bytes, mime: str, request: ProviderRequest
) -> tuple[bytes, str]:
    """AI upscale (seed 003's "generate small, enlarge to the print size"): when the result is smaller than
    the print size, send it through the slot's fal upscaler. Skipped when too little time is left; a failed
    upscale keeps the result as it is (the shaping step resamples it as before)."""
    notes = request.notes
    upscaler = options.upscale_model
    # The size shaping will answer in; a request built without one (a test, an older caller) falls back to the
    # result's aspect capped by the long side, which is right for match_photo only.
    target = request.print_size or _print_size(request.result_aspect, settings.result_long_side_pixels)
    size = _image_size(data)
    if target is None or size is None:
        notes["upscale"] = "skipped: no print size"
        return data, mime
    notes["print_size"] = f"{target[0]}x{target[1]}"
    # Cover both sides: shaping cuts the result to the print's aspect, so the shorter side must reach too.
    factor = max(target[0] / size[0], target[1] / size[1])
    if factor <= 1.05:
        notes["upscale"] = "not needed"
        return data, mime
    if not request.deadline.fits(settings.fal_upscale_min_seconds):
        notes["upscale"] = "skipped: too little time left"
        return data, mime
    arguments: dict[str, Any] = {"image_url": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"}
    factor_name = models.UPSCALERS.get(upscaler)
    if factor_name:
        arguments[factor_name] = min(MAX_FACTOR, math.ceil(factor))
    step: dict[str, Any] = {"polls": 0}
    try:
        bigger, bigger_mime = await attempt(models.Call(upscaler, arguments), request.deadline, step)
    except (BoothError, Retryable, TimeoutError, httpx.HTTPError) as exc:
        notes["upscale"] = f"failed, kept the result: {type(exc).__name__}"
        return data, mime
    notes["upscale"] = f"{upscaler} ×{arguments.get(factor_name or '', 'auto')}"
    bigger_size = _image_size(bigger) or (0, 0)
    notes["upscaled_size"] = "x".join(str(v) for v in bigger_size)
    if bigger_size[0] < target[0] or bigger_size[1] < target[1]:
        notes["upscale"] += " (short of the print size: shaping resamples the rest)"
    # Paid per upscale: the slot's own price, else fal's price per megapixel of the upscaled image (a setting).
    if options.upscale_price_usd is not None:
        notes["upscale_cost_usd"] = options.upscale_price_usd
    else:
        megapixels = bigger_size[0] * bigger_size[1] / 1_000_000
        notes["upscale_cost_usd"] = round(megapixels * settings.fal_upscale_price_per_megapixel_usd, 6)
    return bigger, bigger_mime


def _print_size(aspect: tuple[int, int] | None, long_side: int) -> tuple[int, int] | None:
    """The photo's size with its long side at most `long_side` (match_photo's print size)."""
    if aspect is None or min(aspect) <= 0:
        return None
    return capped_size(aspect, long_side)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the image header (no decode)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (OSError, ValueError):
        return None
