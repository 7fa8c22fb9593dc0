"""Settings: one pydantic-settings class, built by `get_settings()` and injected.

Every field carries a description; the README table and the settings page are made from them.
Fields listed in `RUNTIME_EDITABLE` can also be changed from the admin settings page; a value set in
the environment always wins over a stored one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024

DEFAULT_TEMPLATES = {
    "face_swap": (
        "The first image is the guest's photo, the second image is the reference scene. "
        "Put the face of each person from the guest's photo onto the person in the reference scene. "
        "Keep every guest's identity exactly: face shape, eyes, skin tone, hair line, expression and age. "
        "Keep the scene's clothing, pose, light and camera angle, and blend skin tones and light naturally. "
        "{prompt} Photorealistic. No text, no logos, no watermarks."
    ),
    "background": (
        "The first image is the guest's photo, the second image is the new background. "
        "Place all the people from the guest's photo into the background, keeping their number, "
        "identity, faces, expressions, clothing and pose unchanged. Match the light direction, colour and "
        "scale of the background so they look photographed there. {prompt} "
        "Photorealistic. No text, no logos, no watermarks."
    ),
    "prompt": (
        "Restyle the guest's photo (the first image) as described: {prompt} "
        "Keep every person recognisable: the same number of people, their faces, identity, expressions "
        "and poses. If a further image is given, use it only as a style example. "
        "No text, no logos, no watermarks."
    ),
}

DEEPSEEK_SYSTEM_PROMPTS = {
    "face_swap": (
        "You prepare face swaps for an event photobooth. You get the guest's photo (first image), the "
        "reference scene (second image) and the operator's note. Study both images, then write one precise "
        "instruction for an image model that receives the same two images in the same order. Say how many "
        "people are in the guest's photo and in the scene; which guest (by position from the left and a short "
        "description: hair, glasses, beard, apparent age) takes the place of which person in the scene; that "
        "each guest's identity stays exactly as photographed (face shape, eyes, nose, skin tone, hairline, "
        "expression, age); that the scene's clothing, bodies, poses, background, light and camera angle stay "
        "unchanged; and how to match skin tone, light and grain so the faces look photographed there. If the "
        "numbers differ, say who is left out or which scene people stay as they are. Photorealistic; no text, "
        "logos or watermarks."
    ),
    "background": (
        "You prepare background changes for an event photobooth. You get the guest's photo (first image), the "
        "new background (second image) and the operator's note. Study both images, then write one precise "
        "instruction for an image model that receives the same two images in the same order. Say how many "
        "people are in the guest's photo and describe each by position from the left (clothing, pose, what "
        "they hold) so nobody and nothing is lost; that their number, faces, identity, expressions, clothing, "
        "poses, hands and accessories stay unchanged; where in the background they stand and at what scale; "
        "and how to match the background's light direction, colour temperature, shadows and ground contact "
        "so they look photographed there. Photorealistic; no text, logos or watermarks."
    ),
    "prompt": (
        "You prepare restyled portraits for an event photobooth. You get the guest's photo (first image), "
        "sometimes a style example (second image), and the operator's note describing the style. Study the "
        "photo, then write one precise instruction for an image model that receives the same images in the "
        "same order. Say how many people there are and describe each by position from the left; that their "
        "number, faces, identity, expressions and poses stay recognisable; and how the style described by the "
        "operator applies to clothing, background, light and colours. A second image is only a style "
        "example: nobody from it may appear in the result. No text, logos or watermarks."
    ),
}


class Settings(BaseSettings):
    """Everything an operator can set. Environment variables use the prefix BOOTHGATE_."""

    model_config = SettingsConfigDict(env_prefix="BOOTHGATE_", env_file=".env", extra="ignore")

    # --- where and how it runs -------------------------------------------------------------
    data_dir: Path = Field(Path("./data"), description="Folder for the database and all media.")
    host: str = Field("0.0.0.0", description="Address the server listens on.")
    port: int = Field(8000, description="Port the server listens on.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL. Empty: SQLite at DATA_DIR/boothgate.db. "
        "PostgreSQL: postgresql+asyncpg://user:pass@host/db.",
    )
    public_base_url: str = Field(
        "",
        description="Address the booth and providers reach this server at, e.g. https://booth.example.com. "
        "Used for upload links and for the short-lived media links Turbotext downloads from.",
    )
    language: Literal["ru", "en"] = Field("ru", description="Language of the admin UI (ru or en).")
    loop_watch: bool = Field(
        False,
        description="Measure event-loop stalls (work that delays every booth): the worst one is shown "
        "in /health and each one over 50 ms is logged. For diagnosis and the benchmark.",
    )

    # --- the booth --------------------------------------------------------------------------
    deadline_seconds: float = Field(
        48.0, gt=1, description="Seconds after a booth request arrives by which it must have its answer."
    )
    max_upload_bytes: int = Field(30 * MB, gt=0, description="Largest accepted upload body, in bytes.")
    max_image_pixels: int = Field(
        100_000_000, gt=0, description="Largest accepted image (width × height); bigger is refused unread."
    )
    upload_idle_timeout_seconds: float = Field(
        15.0, gt=0, description="A booth upload that sends nothing for this long is cut off (400)."
    )
    duplicate_window_seconds: float = Field(
        600.0,
        ge=0,
        description="A photo identical to one processed for the same slot within this window gets the stored result.",
    )
    provider_input_pixels: int = Field(
        2_000_000,
        gt=10_000,
        description="Photos are downscaled to at most this many pixels before they go to a provider.",
    )
    jpeg_quality: int = Field(90, ge=50, le=100, description="JPEG quality for prepared inputs and results.")
    image_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 2,
        ge=1,
        le=64,
        description="Image worker processes: how many images are decoded at once (default: the machine's cores).",
    )

    # --- access -----------------------------------------------------------------------------
    admin_user: str = Field("admin", description="User name for the admin UI and JSON API.")
    admin_password: SecretStr | None = Field(
        None, description="Admin password. Unset: generated on first start, printed once, stored hashed."
    )
    upload_password: SecretStr | None = Field(
        None, description="Password the booth sends in the `password` field. Unset: generated on first start."
    )
    auth_max_failures: int = Field(
        10, ge=1, description="Wrong passwords from one address before it is answered 429 for a while."
    )
    auth_lockout_seconds: float = Field(300.0, ge=1, description="How long a locked-out address waits.")

    # --- retention --------------------------------------------------------------------------
    retention_days: int = Field(30, ge=1, description="Photos and results older than this are deleted.")
    trash_retention_days: int = Field(60, ge=1, description="Trash (failed originals) older than this is deleted.")

    # --- Gemini -----------------------------------------------------------------------------
    gemini_api_key: SecretStr | None = Field(None, description="Google Gemini API key.")
    gemini_base_url: str = Field("https://generativelanguage.googleapis.com", description="Gemini API base URL.")
    gemini_model: str = Field("gemini-3.1-flash-image", description="Default Gemini image model.")
    gemini_template_face_swap: str = Field(
        DEFAULT_TEMPLATES["face_swap"],
        description="Gemini instruction for face swap; {prompt} = slot prompt.",
    )
    gemini_template_background: str = Field(
        DEFAULT_TEMPLATES["background"],
        description="Gemini instruction for background; {prompt} = slot prompt.",
    )
    gemini_template_prompt: str = Field(
        DEFAULT_TEMPLATES["prompt"], description="Gemini instruction for restyling; {prompt} = slot prompt."
    )
    gemini_price_per_image_usd: float = Field(
        0.039, ge=0, description="Estimated Gemini cost per generated image, for statistics."
    )

    # --- Turbotext --------------------------------------------------------------------------
    turbotext_api_key: SecretStr | None = Field(None, description="Turbotext API key (paid tariff).")
    turbotext_base_url: str = Field("https://www.turbotext.ru/api_ai", description="Turbotext API base URL.")
    turbotext_poll_interval_seconds: float = Field(1.5, gt=0, description="Seconds between Turbotext result polls.")
    turbotext_mode: Literal["polling", "webhook"] = Field(
        "polling", description="How Turbotext results arrive: polling (default) or webhook."
    )
    turbotext_price_per_image_usd: float = Field(
        0.0,
        ge=0,
        description="Estimated cost of one Turbotext result in USD, for statistics "
        "(Turbotext bills in its own credits; 0 = not counted).",
    )

    # --- DeepSeek ---------------------------------------------------------------------------
    deepseek_api_key: SecretStr | None = Field(None, description="DeepSeek API key.")
    deepseek_base_url: str = Field("https://api.deepseek.com", description="DeepSeek API base URL.")
    deepseek_model: str = Field("deepseek-flash", description="DeepSeek vision model that writes instructions.")
    deepseek_stage_seconds: float = Field(
        12.0, gt=0, description="Time budget for DeepSeek to write the instruction before falling back."
    )
    deepseek_system_prompt_face_swap: str = Field(
        DEEPSEEK_SYSTEM_PROMPTS["face_swap"],
        description="What DeepSeek is told to write for face swap slots (it always answers in JSON; "
        "the answer format is added by boothgate).",
    )
    deepseek_system_prompt_background: str = Field(
        DEEPSEEK_SYSTEM_PROMPTS["background"],
        description="What DeepSeek is told to write for background slots.",
    )
    deepseek_system_prompt_prompt: str = Field(
        DEEPSEEK_SYSTEM_PROMPTS["prompt"],
        description="What DeepSeek is told to write for restyling (prompt) slots.",
    )
    deepseek_price_input_per_mtok_usd: float = Field(
        0.30, ge=0, description="DeepSeek price per million input tokens (peak rate), for statistics."
    )
    deepseek_price_output_per_mtok_usd: float = Field(
        1.20, ge=0, description="DeepSeek price per million output tokens (peak rate), for statistics."
    )

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'boothgate.db').resolve()}"


# Fields the settings page may change at run time (stored in the database; environment wins).
RUNTIME_EDITABLE: tuple[str, ...] = (
    "public_base_url",
    "language",
    "deadline_seconds",
    "provider_input_pixels",
    "retention_days",
    "trash_retention_days",
    "gemini_api_key",
    "gemini_base_url",
    "gemini_model",
    "gemini_template_face_swap",
    "gemini_template_background",
    "gemini_template_prompt",
    "gemini_price_per_image_usd",
    "turbotext_api_key",
    "turbotext_base_url",
    "turbotext_poll_interval_seconds",
    "turbotext_mode",
    "turbotext_price_per_image_usd",
    "deepseek_api_key",
    "deepseek_base_url",
    "deepseek_model",
    "deepseek_stage_seconds",
    "deepseek_system_prompt_face_swap",
    "deepseek_system_prompt_background",
    "deepseek_system_prompt_prompt",
    "deepseek_price_input_per_mtok_usd",
    "deepseek_price_output_per_mtok_usd",
)


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and .env), with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]


def env_name(field: str) -> str:
    return f"BOOTHGATE_{field.upper()}"


def settings_table() -> str:
    """The README's settings table, made from the field descriptions (tests keep the README in sync)."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        if name.startswith("gemini_template_"):
            shown = "(photobooth template)"
        elif info.default_factory is not None:  # depends on the machine: said in the description
            shown = "(see description)"
        elif default is None or default == "":
            shown = "—"
        else:
            shown = f"`{default}`"
        rows.append(f"| `{env_name(name)}` | {shown} | {info.description} |")
    return "\n".join(rows)
