"""The fal.ai tab's slot options: the model (curated or an expert's own id), its arguments, LoRA weights,
the AI upscale and the slot's own prices for statistics."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from boothgate.providers import fal_models as models

AspectRatio = Literal["auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21"]
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)+$")


class LoraWeight(BaseModel):
    """One LoRA of the slot's style: where fal downloads the weights, and how strongly they apply."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., min_length=8, max_length=500, pattern=r"^https://\S+$", description="URL of the weights.")
    scale: float = Field(1.0, ge=0, le=4, description="How strongly the LoRA applies (1 = as trained).")


class FalOptions(BaseModel):
    """Slot options of the fal.ai tab."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        models.DEFAULT_MODEL,
        description="The fal.ai model of this slot. BiRefNet (background slots only) cuts the guests out and "
        "lays them onto the slot's reference. custom: the model id below.",
        json_schema_extra={"enum": [*models.CURATED, models.CUSTOM]},
    )
    custom_model: str = Field(
        "", max_length=120, description="Experts: a fal.ai model id, e.g. fal-ai/nano-banana-pro/edit."
    )
    custom_style: models.Style = Field(
        "nano_banana", description="Experts: which argument style the custom model speaks."
    )
    aspect_ratio: AspectRatio = Field(
        "auto", description="Shape of the result. auto: the supported ratio nearest to the photo."
    )
    resolution: Literal["1K", "2K", "4K"] = Field(
        "1K", description="Nano Banana: result resolution (2K and 4K cost more)."
    )
    output_format: Literal["jpeg", "png"] = Field("jpeg", description="Format fal.ai draws the result in.")
    safety_tolerance: Literal["1", "2", "3", "4", "5", "6"] = Field(
        "2", description="FLUX Kontext: 1 is the strictest safety filter, 6 the most permissive."
    )
    price_usd: float | None = Field(
        None,
        ge=0,
        le=1000,
        description="What one result costs, for statistics. Empty: the price in boothgate's model list.",
    )
    loras: list[LoraWeight] = Field(
        default_factory=list,
        max_length=5,
        description="FLUX Kontext + LoRA: the LoRA weights of your own trained styles (URL and scale), sent as "
        "loras in this order.",
    )
    upscale_model: str = Field(
        "",
        description="AI upscale: when the result is smaller than the print size, send it through this fal "
        "upscaler (empty: the ordinary resampling). Skipped when too little time is left.",
        json_schema_extra={"enum": ["", *models.UPSCALERS]},
    )
    upscale_price_usd: float | None = Field(
        None,
        ge=0,
        le=100,
        description="What one AI upscale costs, for statistics. Empty: BOOTHGATE_FAL_UPSCALE_PRICE_PER_MEGAPIXEL_USD "
        "times the upscaled result's megapixels.",
    )
    extra_arguments: dict[str, Any] = Field(
        default_factory=dict, description="Experts: more JSON arguments for the model (they override the built ones)."
    )  # fmt: skip

    @model_validator(mode="after")
    def _known_model(self) -> FalOptions:
        self.custom_model = self.custom_model.strip()
        self.model = models.RENAMED.get(self.model, self.model)  # a slot saved with an id fal has retired
        if self.model == models.CUSTOM:
            if not MODEL_ID.match(self.custom_model):
                raise ValueError("custom model: a fal.ai model id such as fal-ai/nano-banana-pro/edit")
        elif self.model not in models.CURATED:
            raise ValueError(f"model: one of {', '.join(models.CURATED)} or custom")
        if self.loras and self.resolved().style != "kontext_lora":
            raise ValueError("loras: only the FLUX Kontext + LoRA model takes LoRA weights")
        if self.upscale_model and self.upscale_model not in models.UPSCALERS:
            raise ValueError(f"upscale model: one of {', '.join(models.UPSCALERS)} or empty")
        return self

    def resolved(self) -> models.FalModel:
        if self.model == models.CUSTOM:
            return models.custom_model(self.custom_model, self.custom_style)
        return models.CURATED[self.model]
