"""The curated fal.ai models: what each one is called, how it takes its arguments, what it costs.

This table is data. A model's entry says which *argument style* it speaks (image_urls + aspect_ratio,
image_urls + image_size, Kontext's image_url/image_urls, BiRefNet's cut-out); the builders below turn
(photo links, text, slot options) into the JSON body for that style. An expert may run any other fal
model id with one of these styles (the slot's "custom model" option). Prices are fal's list prices
when this table was written — a slot's own price option overrides them, so the cost column can follow
fal's price page without a new release.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from boothgate.providers.base import Kind

Style = Literal["nano_banana", "seedream", "kontext", "birefnet", "kontext_lora"]
STYLES: tuple[str, ...] = ("nano_banana", "seedream", "kontext", "birefnet", "kontext_lora")

ALL_KINDS = frozenset(Kind)
NANO_BANANA_RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16")
KONTEXT_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")


@dataclass(frozen=True)
class FalModel:
    id: str
    label: str
    style: Style
    price_usd: float  # one result at the default resolution
    kinds: frozenset[Kind] = ALL_KINDS
    # The endpoint to use when a reference goes along with the photo (Kontext: "/multi").
    multi_id: str | None = None
    aspect_ratios: tuple[str, ...] = ()
    # Seedream-style: the result's pixel count (the shape follows the photo).
    size_pixels: int = 0
    price_by_resolution_usd: Mapping[str, float] = field(default_factory=dict)
    # Seedream-style: fal's documented lower bound on the result's pixels (a size under it is refused).
    min_pixels: int = 0
    # The day the price above was read from fal's model page (shown on the settings page).
    price_checked: str = ""


CURATED: dict[str, FalModel] = {
    m.id: m
    for m in (
        # Google's own endpoint on fal (owner `google/`): Nano Banana 2.1. The older `fal-ai/nano-banana-2/edit`
        # ran Gemini 3.1 Flash Image, which Google shut down on 2026-10-29. fal bills 2.1 per token ($35.294 per
        # 1M output tokens); fal's own guide (fal.ai/learn/tools/nano-banana-api, read 2026-12-03) puts one image
        # at about $0.040 at 1K and $0.134 at 4K, and ten at 2K at about $0.62 (so $0.062 each). The $0.08 /
        # $0.12 / $0.16 before were Nano Banana 2's per-image prices.
        FalModel(
            "google/nano-banana-2.1/edit",
            "Nano Banana 2.1 (edit)",
            "nano_banana",
            0.040,
            aspect_ratios=NANO_BANANA_RATIOS,
            price_by_resolution_usd={"1K": 0.040, "2K": 0.062, "4K": 0.134},
            price_checked="2026-12-03",
        ),
        FalModel(
            "fal-ai/bytedance/seedream/v4.5/edit",
            "Seedream 4.5 (edit)",
            "seedream",
            0.04,
            size_pixels=2560 * 1440,
            min_pixels=1920 * 1920,
            price_checked="2026-12-02",
        ),
        FalModel(
            "fal-ai/flux-pro/kontext",
            "FLUX.1 Kontext [pro]",
            "kontext",
            0.04,
            multi_id="fal-ai/flux-pro/kontext/multi",
            aspect_ratios=KONTEXT_RATIOS,
            price_checked="2026-12-02",
        ),
        # The operator's own trained styles: FLUX Kontext with LoRA weights (`loras: [{path, scale}]`, seeds
        # 000/001/003); $0.035 per megapixel on fal's model page, about one megapixel per result.
        # One input image: restyling (prompt) slots only.
        FalModel("fal-ai/flux-kontext-lora", "FLUX.1 Kontext [dev] + your LoRA styles", "kontext_lora", 0.035,
                 frozenset({Kind.prompt}), price_checked="2026-12-02"),
        # Two steps: fal cuts the guests out, boothgate lays them onto the slot's reference.
        # (`fal-ai/birefnet` is deprecated on fal: "use birefnet-v2", same fields.)
        FalModel("fal-ai/birefnet/v2", "BiRefNet v2 cut-out + the slot's background", "birefnet", 0.0,
                 frozenset({Kind.background}), price_checked="2026-12-02"),
    )
}  # fmt: skip
DEFAULT_MODEL = "google/nano-banana-2.1/edit"
# Ids an older boothgate stored in slots, and what fal offers in their place now (a slot saved with
# the old id runs the new one; the settings page says so).
RENAMED: dict[str, str] = {
    "fal-ai/birefnet": "fal-ai/birefnet/v2",
    "fal-ai/nano-banana-2/edit": "google/nano-banana-2.1/edit",
}
CUSTOM = "custom"


def custom_model(model_id: str, style: Style) -> FalModel:
    """An expert's model id, spoken in one of the known argument styles (price 0 unless the slot sets one)."""
    curated = CURATED.get(model_id)
    if curated is not None and curated.style == style:
        return curated
    return FalModel(
        model_id,
        model_id,
        style,
        0.0,
        kinds=frozenset({Kind.background})
        if style == "birefnet"
        else frozenset({Kind.prompt})
        if style == "kontext_lora"
        else ALL_KINDS,
        aspect_ratios=NANO_BANANA_RATIOS if style == "nano_banana" else KONTEXT_RATIOS if style == "kontext" else (),
        size_pixels=2560 * 1440 if style == "seedream" else 0,
        min_pixels=1920 * 1920 if style == "seedream" else 0,
    )


def nearest_ratio(width: int, height: int, choices: tuple[str, ...]) -> str:
    """The supported aspect ratio closest to the photo's (compared on a log scale: 2:1 and 1:2 are as
    far from 1:1)."""
    target = math.log(width / height)

    def distance(choice: str) -> float:
        w, h = (float(v) for v in choice.split(":"))
        return abs(math.log(w / h) - target)

    return min(choices, key=distance)


def shaped_size(width: int, height: int, pixels: int, step: int = 16, min_pixels: int = 0) -> dict[str, int]:
    """{"width", "height"} with about `pixels` pixels and the photo's shape, sides divisible by `step`,
    never fewer than `min_pixels` (rounding both sides to `step` can land just under a service's minimum)."""
    ratio = width / height
    h = math.sqrt(max(pixels, min_pixels) / ratio)
    out_w, out_h = max(step, round(h * ratio / step) * step), max(step, round(h / step) * step)
    while out_w * out_h < min_pixels:  # grow the side that keeps the shape best
        if abs((out_w + step) / out_h - ratio) <= abs(out_w / (out_h + step) - ratio):
            out_w += step
        else:
            out_h += step
    return {"width": out_w, "height": out_h}


# Upscalers on fal an operator may pick for "AI upscale" (model id → the name of its factor argument;
# None: the model picks its own factor). Data, like the table above.
UPSCALERS: dict[str, str | None] = {
    "fal-ai/esrgan": "scale",
    "fal-ai/clarity-upscaler": "upscale_factor",
    "fal-ai/recraft/upscale/crisp": None,
}


@dataclass(frozen=True)
class Call:
    """One fal request: the endpoint and its JSON body."""

    endpoint: str
    arguments: dict[str, Any]


def build_call(
    model: FalModel,
    text: str,
    images: list[str],
    photo_size: tuple[int, int],
    aspect_ratio: str,
    resolution: str,
    output_format: str,
    safety_tolerance: str,
    loras: list[dict[str, Any]] | None = None,
) -> Call:
    """The endpoint and arguments for `model`. `images` are links or data URIs, the photo first."""
    width, height = photo_size
    if model.style == "kontext_lora":
        return Call(
            model.id,
            {
                "image_url": images[0],
                "prompt": text,
                "loras": list(loras or []),
                "num_inference_steps": 30,
                "guidance_scale": 2.5,
                "output_format": output_format,
                "enable_safety_checker": True,
                "resolution_mode": "match_input",
                "num_images": 1,
            },
        )
    if model.style == "birefnet":
        return Call(
            model.id,
            {"image_url": images[0], "model": "Portrait", "output_format": "png", "refine_foreground": True},
        )
    ratio = aspect_ratio
    if ratio == "auto" and model.aspect_ratios:
        ratio = nearest_ratio(width, height, model.aspect_ratios)
    if model.style == "nano_banana":
        return Call(
            model.id,
            {
                "prompt": text,
                "image_urls": images,
                "aspect_ratio": ratio,
                "resolution": resolution,
                "output_format": output_format,
                "num_images": 1,
            },
        )
    if model.style == "seedream":
        return Call(
            model.id,
            {
                "prompt": text,
                "image_urls": images,
                "image_size": shaped_size(width, height, model.size_pixels, min_pixels=model.min_pixels),
                "num_images": 1,
                "max_images": 1,
                "enable_safety_checker": True,
            },
        )
    # Kontext: one image on the base endpoint, several on /multi.
    arguments: dict[str, Any] = {
        "prompt": text,
        "aspect_ratio": ratio,
        "output_format": output_format,
        "safety_tolerance": safety_tolerance,
        "num_images": 1,
    }
    if len(images) > 1 and model.multi_id:
        return Call(model.multi_id, {**arguments, "image_urls": images})
    return Call(model.id, {**arguments, "image_url": images[0]})


def app_of(endpoint: str) -> str:
    """The owner/app part of an endpoint id (`fal-ai/flux-pro/kontext` → `fal-ai/flux-pro`): fal's status and
    cancel URLs take only this ("do not add the endpoint path")."""
    return "/".join(endpoint.strip("/").split("/")[:2])


def price(model: FalModel, resolution: str) -> float:
    return model.price_by_resolution_usd.get(resolution, model.price_usd)
