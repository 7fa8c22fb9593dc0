"""The Gemini tab's slot options: the model, the result's aspect ratio and its resolution."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AspectRatio = Literal["auto", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
ImageSize = Literal["auto", "1K", "2K", "4K"]


class GeminiOptions(BaseModel):
    """Slot options of the Gemini tab."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="",
        description="Gemini model for this slot (pick from the models your key can use now, or type an id). "
        "Empty: the default model from the settings page.",
    )
    aspect_ratio: AspectRatio = Field(
        default="auto", description="Shape of the result. auto: the supported ratio nearest to the photo."
    )
    image_size: ImageSize = Field(
        default="auto",
        description="Result resolution (1K, 2K, 4K) for models that offer it (the settings page's "
        "table of image sizes says which). auto: the model's default (1K).",
    )

    @field_validator("model")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()
