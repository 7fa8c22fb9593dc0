"""Settings: one pydantic-settings class, built by `get_settings()` and injected.

Every field carries a description; the manual's settings table (docs/settings.md) and the settings page
are made from them.
Fields listed in `RUNTIME_EDITABLE` can also be changed from the admin settings page; a value set in
the environment always wins over a stored one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from boothgate.prices import openai_price_map, prefix_map

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


# What Google published on 2026-11-28 (shared/providers/gemini.md). These are defaults an operator can
# change on the settings page when Google changes them; nothing in the code decides by model name.
# USD per image by size (Google prices images as output tokens: 1K/2K/4K take different token counts).
GEMINI_PRICES_USD: dict[str, dict[str, float]] = {
    "gemini-nano-banana-2.1": {"1K": 0.0336, "2K": 0.0504, "4K": 0.0756},
    "gemini-3-pro-image": {"1K": 0.134, "2K": 0.134, "4K": 0.24},
    "gemini-3.1-flash-lite-image": {"1K": 0.0336},
}
# The day the default prices above and the OpenAI ones below were read from the services' price pages.
PRICES_CHECKED = "2026-12-02"
# OpenAI prices an image by its quality and size (the output tokens each takes): model-id prefix → quality →
# WIDTHxHEIGHT → USD per image. gpt-image-2 as OpenAI's image-generation guide gives it (read 2026-12-03,
# docs/providers-field.md). A model not named here costs the per-quality settings below.
OPENAI_PRICES_USD: dict[str, dict[str, dict[str, float]]] = {
    "gpt-image-2": {
        "low": {"1024x1024": 0.006, "1024x1536": 0.005, "1536x1024": 0.005},
        "medium": {"1024x1024": 0.053, "1024x1536": 0.041, "1536x1024": 0.041},
        "high": {"1024x1024": 0.211, "1024x1536": 0.165, "1536x1024": 0.165},
    },
}
OPENAI_PRICES_CHECKED = "2026-12-03"
GEMINI_IMAGE_SIZES: dict[str, list[str]] = {
    "gemini-nano-banana-2.1": ["1K", "2K", "4K"],
    "gemini-3-pro-image": ["1K", "2K", "4K"],
    "gemini-3.1-flash-lite-image": ["1K"],
}


class Settings(BaseSettings):
    """Everything an operator can set. Environment variables use the prefix BOOTHGATE_."""

    model_config = SettingsConfigDict(env_prefix="BOOTHGATE_", env_file=".env", extra="ignore", allow_inf_nan=False)

    # --- where and how it runs -------------------------------------------------------------
    data_dir: Path = Field(Path("./data"), description="Folder for the database and all media.")
    host: str = Field("0.0.0.0", description="Address the server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the server listens on.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL. Empty: SQLite at DATA_DIR/boothgate.db. "
        "PostgreSQL: postgresql+asyncpg://user:pass@host/db.",
    )
    migrate_on_start: bool = Field(
        True,
        description="`serve` brings the database schema up to date at start (safe when several nodes start at "
        "once on PostgreSQL: one migrates, the others wait). Off: run `boothgate migrate` before starting the "
        "nodes; a node then refuses to start on an older schema.",
    )
    drain_seconds: float = Field(
        0.0,
        ge=0.0,
        le=120.0,
        description="On SIGTERM: how long a node keeps answering `/health` with 503 (and new booth posts with "
        "503 + Retry-After) before it stops accepting connections, so a load balancer moves booths to the other "
        "nodes first. 0 for a single node; a few seconds more than the balancer's health-check interval behind one.",
    )
    public_base_url: str = Field(
        "",
        description="Address the booth and providers reach this server at, e.g. https://booth.example.com. "
        "Used for upload links and for the short-lived media links Turbotext downloads from.",
    )
    language: Literal["ru", "en"] = Field("ru", description="Language of the admin UI (ru or en).")
    cost_currency: Literal["rub", "usd"] = Field(
        "rub",
        description="Currency of costs in the statistics: rub (roubles, at the dollar rate rub_per_usd) or usd. "
        "Provider prices are set in US dollars.",
    )
    rub_per_usd: float = Field(
        95.0, gt=0, le=100_000, description="Roubles per US dollar for costs shown in rub; set the day's rate."
    )
    loop_watch: bool = Field(
        False,
        description="Measure event-loop stalls (work that delays every booth): the worst one is shown "
        "in /health and each one over 50 ms is logged. For diagnosis and the benchmark.",
    )

    # --- media in an S3-compatible bucket (issue 27: several nodes) ----------------------------
    media_url: str = Field(
        "",
        description="Empty: media only in the data folder (one node). `s3://bucket/prefix`: every photo, result, "
        "reference, overlay and trashed original is also put in this bucket before it counts as written, and a "
        "node reads from the bucket what another node wrote. Garage or SeaweedFS; the data folder stays each "
        "node's working copy.",
    )
    media_endpoint_url: str = Field(
        "",
        validation_alias=AliasChoices(
            "media_endpoint_url", "BOOTHGATE_MEDIA_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"
        ),
        description="Address of the S3 service, e.g. http://127.0.0.1:3900 (Garage) or http://127.0.0.1:8333 "
        "(SeaweedFS). Empty: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else Amazon S3 itself.",
    )
    media_region: str = Field(
        "",
        validation_alias=AliasChoices("media_region", "BOOTHGATE_MEDIA_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
        description="Region of the bucket (Garage: `garage`; SeaweedFS: any). Empty: AWS_REGION, else us-east-1.",
    )
    media_access_key_id: str = Field(
        "",
        validation_alias=AliasChoices("media_access_key_id", "BOOTHGATE_MEDIA_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        description="Access key id for the bucket. Empty: AWS_ACCESS_KEY_ID.",
    )
    media_secret_access_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(
            "media_secret_access_key", "BOOTHGATE_MEDIA_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"
        ),
        description="Secret key for the bucket (never logged or shown). Empty: AWS_SECRET_ACCESS_KEY.",
    )
    media_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Longest one bucket call may take (connect, put, get, retries). A booth whose original cannot "
        "reach the bucket in this time gets its slot's on_failure answer; /health then answers 503 (storage).",
    )

    # --- the booth --------------------------------------------------------------------------
    deadline_seconds: float = Field(
        48.0, gt=1, le=600, description="Seconds after a booth request arrives by which it must have its answer."
    )
    max_upload_bytes: int = Field(30 * MB, gt=0, le=2048 * MB, description="Largest accepted upload body, in bytes.")
    max_image_pixels: int = Field(
        100_000_000,
        gt=0,
        le=1_000_000_000,
        description="Largest accepted image (width × height); bigger is refused unread.",
    )
    upload_idle_timeout_seconds: float = Field(
        15.0, gt=0, le=600, description="A booth upload that sends nothing for this long is cut off (400)."
    )
    duplicate_window_seconds: float = Field(
        600.0,
        ge=0,
        le=7 * 86400,
        description="A photo identical to one processed for the same slot within this window gets the stored result.",
    )
    provider_input_pixels: int = Field(
        2_000_000,
        gt=10_000,
        le=100_000_000,
        description="Photos are downscaled to at most this many pixels before they go to a provider.",
    )
    # Provider answers are untrusted input (issue 31): counted as they arrive, decompressed bytes included.
    provider_answer_max_bytes: int = Field(
        40 * MB,
        ge=1 * MB,
        le=1024 * MB,
        description="Largest provider answer (a result image, or JSON carrying one), counted after decompression; "
        "bigger is refused as the provider's failure before it is parsed.",
    )
    provider_list_max_bytes: int = Field(
        8 * MB,
        ge=64 * 1024,
        le=256 * MB,
        description="Largest answer of a provider's model list, counted after decompression.",
    )
    jpeg_quality: int = Field(90, ge=50, le=100, description="JPEG quality for prepared inputs and results.")
    image_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 2,
        ge=1,
        le=64,
        description="Image worker processes: how many images are decoded at once (default: the machine's cores).",
    )
    image_worker_memory_bytes: int = Field(
        1536 * MB,
        ge=256 * MB,
        le=65536 * MB,
        description="Memory each image worker process may hold (Linux and macOS; read at start). Work that needs "
        "more fails at once: the worker is replaced, a result is the provider's failure (the fallback serves), "
        "a photo is refused as too big to decode.",
    )
    early_decode_memory_bytes: int = Field(
        128 * MB,
        ge=0,
        le=4096 * MB,
        description="Memory for photos decoded while their upload still arrives (each holds its scaled image, "
        "~6 MB for a 24 MP photo): as many are decoded early as fit; the others after their last byte. 0: never.",
    )
    result_long_side_pixels: int = Field(
        3000,
        ge=256,
        le=20_000,
        description="Result shape `match_photo`: the result gets the photo's size, its long side at most this "
        "(also the long side of the moderation mask image).",
    )
    rehearsal_concurrency: int = Field(
        3, ge=1, le=20, description="How many slots a rehearsal runs at the same time (each is a paid call)."
    )
    webhooks_allow_private: bool = Field(
        False,
        description="Let outgoing webhooks post to loopback and private-network addresses (off: no requests "
        "into the venue's LAN from the client API's webhooks).",
    )
    access_log: bool = Field(
        False,
        description="Log one line per HTTP request (uvicorn's access log). Passwords and keys in link "
        "queries are masked.",
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
        10, ge=1, le=1_000_000, description="Wrong passwords from one address before it is answered 429 for a while."
    )
    auth_lockout_seconds: float = Field(300.0, ge=1, le=7 * 86400, description="How long a locked-out address waits.")
    # --- hardening (issue 14): what requests without the upload password may leave behind ---
    unauthenticated_records_per_minute: int = Field(
        20,
        ge=0,
        le=10_000,
        description="Failed booth requests that never proved the upload password are recorded (job row and "
        "trash sidecar, never their body) at most this often per address and minute; more are only counted.",
    )

    # --- hardening (issue 31): strangers who rotate addresses ---
    admin_password_checks_per_second: float = Field(
        5.0,
        ge=0.1,
        le=1000,
        description="Admin password checks (a scrypt hash each) per second from all addresses together; more "
        "are answered 429 at once. The hashing has its own thread: booth work never waits behind it.",
    )
    ipv6_throttle_prefix: int = Field(
        64,
        ge=16,
        le=128,
        description="IPv6 clients are counted by this prefix length for wrong-password throttling and record "
        "budgets (an ordinary IPv6 connection is a whole /64).",
    )
    unauthenticated_records_total_per_minute: int = Field(
        100,
        ge=0,
        le=100_000,
        description="All failed booth requests that never proved the upload password, from every address "
        "together, are recorded at most this often per minute; more are only counted.",
    )
    shared_count_wait_seconds: float = Field(
        0.1,
        ge=0.01,
        le=5,
        description="Several nodes on PostgreSQL: how long a refused request (a booth's or the admin sign-in's "
        "wrong password, a guess at a guest page) waits for the counts of all nodes (read at start); a count "
        "not back in time leaves the node's own count to decide. Requests with the right password never wait "
        "for it.",
    )
    # --- the guest's copy (issue 30) -----------------------------------------------------------
    sharing_enabled: bool = Field(
        True,
        description="Guest pages /p/<token>, galleries, the QR on prints and the X-Share-Url header. Off: "
        "every page answers 404 and no QR is printed (set BOOTHGATE_PUBLIC_BASE_URL for guests' phones).",
    )
    work_lease_seconds: float = Field(
        30.0,
        ge=2.0,
        le=3600.0,
        description="Background work (late AI results): how long a node's claim on a task lasts without "
        "renewal; after a crash another start takes the task over once it has run out.",
    )

    # --- retention --------------------------------------------------------------------------
    retention_days: int = Field(30, ge=1, le=36_500, description="Photos and results older than this are deleted.")
    trash_retention_days: int = Field(
        60, ge=1, le=36_500, description="Trash (failed originals) older than this is deleted."
    )
    job_rows_days: int = Field(
        400,
        ge=1,
        le=36_500,
        description="Job rows (one per photo: the job list, the guests' pages) older than this, and than "
        "`retention_days`, are deleted once counted in the statistics' summaries, which stay; an event's "
        "rows wait until its own files are deleted.",
    )
    trash_max_bytes: int = Field(
        5 * 1024 * MB,
        ge=1 * MB,
        le=100 * 1024 * 1024 * MB,
        description="Size budget of the trash folder: when it is exceeded the oldest entries are removed "
        "first and Statistics shows a warning.",
    )

    # --- Gemini -----------------------------------------------------------------------------
    gemini_api_key: SecretStr | None = Field(None, description="Google Gemini API key.")
    gemini_api_keys: SecretStr | None = Field(
        None,
        description="More Gemini API keys, comma-separated: calls are spread over them and the single "
        "key; a rate-limited key rests while the others carry on, a refused key is taken out.",
    )
    gemini_base_url: str = Field("https://generativelanguage.googleapis.com", description="Gemini API base URL.")
    gemini_model: str = Field(
        "gemini-nano-banana-2.1",
        description="Default Gemini image model (a slot may choose another). The settings page lists the models "
        "your key can use now; a model Google shuts down answers 404.",
    )
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
        0.0336,
        ge=0,
        le=1000,
        description="Estimated Gemini cost per generated image for a model not named in "
        "BOOTHGATE_GEMINI_PRICES_USD, for statistics and the rehearsal estimate.",
    )
    # --- model knowledge as data (issue 11): edited here, never parsed out of model names ---
    gemini_prices_usd: str = Field(
        json.dumps(GEMINI_PRICES_USD),
        description="Gemini cost per image by model (JSON: model-id prefix → USD, or USD by image size such as "
        '{"1K": 0.0336, "4K": 0.0756}; the longest matching prefix wins). Used for statistics and the rehearsal '
        "estimate.",
    )
    gemini_prices_checked: str = Field(
        PRICES_CHECKED,
        max_length=40,
        description="The day the Gemini prices were last compared with Google's price page (shown on the "
        "settings page).",
    )
    gemini_image_sizes: str = Field(
        json.dumps(GEMINI_IMAGE_SIZES),
        description="Which Gemini models take an image size, and which (JSON: model-id prefix → list of "
        "1K/2K/4K; [] = never send one). A model not named here gets the slot's size, and when Gemini "
        "refuses it the same call is repeated once without it.",
    )

    # --- Turbotext --------------------------------------------------------------------------
    turbotext_api_key: SecretStr | None = Field(None, description="Turbotext API key (paid tariff).")
    turbotext_api_keys: SecretStr | None = Field(
        None,
        description="More Turbotext API keys, comma-separated: calls are spread over them and the single "
        "key; a rate-limited key rests while the others carry on, a refused key is taken out.",
    )
    turbotext_base_url: str = Field("https://www.turbotext.ru/api_ai", description="Turbotext API base URL.")
    turbotext_poll_interval_seconds: float = Field(
        1.5, gt=0, le=60, description="Seconds between Turbotext result polls."
    )
    turbotext_mode: Literal["polling", "webhook"] = Field(
        "polling", description="How Turbotext results arrive: polling (default) or webhook."
    )
    turbotext_price_per_image_usd: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="Estimated cost of one Turbotext result in USD, for statistics "
        "(Turbotext bills in its own credits; 0 = not counted).",
    )

    # --- DeepSeek ---------------------------------------------------------------------------
    deepseek_api_key: SecretStr | None = Field(None, description="DeepSeek API key.")
    deepseek_api_keys: SecretStr | None = Field(
        None,
        description="More DeepSeek API keys, comma-separated: calls are spread over them and the single "
        "key; a rate-limited key rests while the others carry on, a refused key is taken out.",
    )
    deepseek_base_url: str = Field("https://api.deepseek.com", description="DeepSeek API base URL.")
    deepseek_model: str = Field("deepseek-flash", description="DeepSeek vision model that writes instructions.")
    deepseek_stage_seconds: float = Field(
        12.0, gt=0, le=600, description="Time budget for DeepSeek to write the instruction before falling back."
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
        0.30, ge=0, le=10_000, description="DeepSeek price per million input tokens (peak rate), for statistics."
    )
    deepseek_price_output_per_mtok_usd: float = Field(
        1.20, ge=0, le=10_000, description="DeepSeek price per million output tokens (peak rate), for statistics."
    )

    # --- fallback chain and offline detection --------------------------------------------------
    local_budget_seconds: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Time the hedge gives a local (offline) fallback slot that has no successful runs yet; "
        "afterwards the p95 of its recent runs is used.",
    )
    fallback_default_seconds: float = Field(
        15.0,
        gt=0,
        le=600,
        description="Time the hedge gives a cloud fallback slot that has no successful runs yet.",
    )
    shaping_reserve_seconds: float = Field(
        0.75,
        ge=0.1,
        le=10,
        description="Shaping a result stops this long before the booth's deadline, and the result goes out "
        "as the provider returned it (`shape_skipped`): raise it on a slow machine.",
    )
    fallback_margin_seconds: float = Field(
        2.0,
        ge=0,
        le=60,
        description="Extra time on top of the fallback's p95: the hedge starts the fallback this much earlier.",
    )
    breaker_failures: int = Field(
        3, ge=1, le=100, description="Unreachable runs within the window after which a provider is marked offline."
    )
    breaker_window_seconds: float = Field(
        60.0, gt=0, le=3600, description="Window in which unreachable runs are counted for offline detection."
    )
    breaker_open_seconds: float = Field(
        30.0, gt=0, le=3600, description="How long jobs skip an offline provider before it is tried again."
    )

    # --- the offline engine (tab `local`) ---------------------------------------------------
    local_output_long_side_pixels: int = Field(
        3000,
        ge=256,
        le=8000,
        description="Offline tab: the long side of its results in pixels (photos are prepared to about this "
        "size; 3000 = 3000×2000 from a 24 MP camera). Bigger is sharper and slower.",
    )
    local_face_swap_min_face_pixels: int = Field(
        140,
        ge=32,
        le=4000,
        description="Offline face swap: a guest face narrower than this many pixels (in the photo at the size "
        "above) is refused with 422 and a retake message instead of printed blurred. In a group every usable "
        "face is swapped.",
    )

    # --- OpenAI -----------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(None, description="OpenAI API key (platform.openai.com).")
    openai_api_keys: SecretStr | None = Field(
        None,
        description="More OpenAI API keys, comma-separated: calls are spread over them and the single "
        "key; a rate-limited key rests while the others carry on, a refused key is taken out.",
    )
    openai_base_url: str = Field("https://api.openai.com/v1", description="OpenAI API base URL.")
    openai_model: str = Field("gpt-image-2", description="Default OpenAI image model for edits.")
    openai_free_size_models: str = Field(
        "gpt-image-2, gpt-image-2-2026-04-21, gpt-image-2.5-sunburst, gpt-image-2.5-flare, gpt-image-2.6-sunburst, "
        "gpt-image-2.6-flare",
        description="Comma-separated OpenAI models that accept any WIDTHxHEIGHT divisible by 16: their "
        "results get the photo's exact shape. Other models get 1536x1024, 1024x1536 or 1024x1024.",
    )
    openai_input_fidelity_models: str = Field(
        "",
        description="Comma-separated OpenAI models that accept input_fidelity (sent as high for faces). Empty by "
        "default: gpt-image-1.5 and gpt-image-1-mini were shut down on 2026-12-01, and OpenAI's API reference says "
        "to leave it out for gpt-image-2, which keeps faces on its own. A model that answers 400 naming the field "
        "is remembered and not sent it again.",
    )
    openai_prices_usd: str = Field(
        json.dumps(OPENAI_PRICES_USD),
        description="OpenAI cost per image by model, quality and size (JSON: model-id prefix → quality → "
        '{"1024x1024": USD, "1536x1024": USD}, or one USD for every size; the longest matching prefix wins). A free '
        "size costs what the listed size with the nearest pixel count costs. Used for statistics.",
    )
    openai_price_low_usd: float = Field(
        0.006, ge=0, le=1000, description="Estimated OpenAI cost per image at quality low, for a model or quality "
        "not priced in BOOTHGATE_OPENAI_PRICES_USD.",
    )  # fmt: skip
    openai_price_medium_usd: float = Field(
        0.053, ge=0, le=1000, description="Estimated OpenAI cost per image at quality medium, for a model or quality "
        "not priced in BOOTHGATE_OPENAI_PRICES_USD.",
    )  # fmt: skip
    openai_price_high_usd: float = Field(
        0.211, ge=0, le=1000, description="Estimated OpenAI cost per image at quality high, for a model or quality "
        "not priced in BOOTHGATE_OPENAI_PRICES_USD.",
    )  # fmt: skip
    openai_prices_checked: str = Field(
        OPENAI_PRICES_CHECKED,
        max_length=40,
        description="The day the OpenAI prices were last compared with OpenAI's price page (shown on the "
        "settings page).",
    )

    # --- fal.ai -----------------------------------------------------------------------------
    fal_api_key: SecretStr | None = Field(None, description="fal.ai API key (fal.ai/dashboard/keys).")
    fal_api_keys: SecretStr | None = Field(
        None,
        description="More fal.ai API keys, comma-separated: calls are spread over them and the single "
        "key; a rate-limited key rests while the others carry on, a refused key is taken out.",
    )
    fal_queue_url: str = Field("https://queue.fal.run", description="fal.ai queue address (submit, status, result).")
    fal_poll_interval_seconds: float = Field(
        0.5, gt=0, le=10, description="Seconds between fal.ai status polls while a request is queued or running."
    )
    fal_upscale_min_seconds: float = Field(
        8.0,
        gt=0,
        le=600,
        description="AI upscale (a fal slot option): skipped, keeping the ordinary resampling, when less than this "
        "many seconds are left before the booth's deadline.",
    )
    fal_upscale_price_per_megapixel_usd: float = Field(
        0.03,
        ge=0,
        le=10,
        description="What an AI upscale costs per megapixel of the upscaled image, for statistics (fal's "
        "clarity-upscaler page: $0.03 per megapixel, read 2026-12-02; other upscalers are priced differently, "
        "so a slot can set its own upscale price).",
    )
    fal_inputs: Literal["data_uri", "media_link"] = Field(
        "data_uri",
        description="How photos reach fal.ai: data_uri (inside the request, no public address needed) or "
        "media_link (a short-lived link on BOOTHGATE_PUBLIC_BASE_URL; smaller requests).",
    )

    @field_validator("gemini_prices_usd")
    @classmethod
    def _price_map(cls, value: str) -> str:
        prefix_map(value, float)
        return value

    @field_validator("openai_prices_usd")
    @classmethod
    def _openai_price_map(cls, value: str) -> str:
        openai_price_map(value)
        return value

    @field_validator("gemini_image_sizes")
    @classmethod
    def _size_map(cls, value: str) -> str:
        prefix_map(value, list)
        return value

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
    "cost_currency",
    "rub_per_usd",
    "deadline_seconds",
    "provider_input_pixels",
    "rehearsal_concurrency",
    "retention_days",
    "trash_retention_days",
    "sharing_enabled",
    "gemini_api_key",
    "gemini_api_keys",
    "gemini_base_url",
    "gemini_model",
    "gemini_template_face_swap",
    "gemini_template_background",
    "gemini_template_prompt",
    "gemini_price_per_image_usd",
    "gemini_prices_usd",
    "gemini_prices_checked",
    "gemini_image_sizes",
    "turbotext_api_key",
    "turbotext_api_keys",
    "turbotext_base_url",
    "turbotext_poll_interval_seconds",
    "turbotext_mode",
    "turbotext_price_per_image_usd",
    "deepseek_api_key",
    "deepseek_api_keys",
    "deepseek_base_url",
    "deepseek_model",
    "deepseek_stage_seconds",
    "deepseek_system_prompt_face_swap",
    "deepseek_system_prompt_background",
    "deepseek_system_prompt_prompt",
    "deepseek_price_input_per_mtok_usd",
    "deepseek_price_output_per_mtok_usd",
    "openai_api_key",
    "openai_api_keys",
    "openai_base_url",
    "openai_model",
    "openai_free_size_models",
    "openai_input_fidelity_models",
    "openai_prices_usd",
    "openai_price_low_usd",
    "openai_price_medium_usd",
    "openai_price_high_usd",
    "openai_prices_checked",
    "fal_api_key",
    "fal_api_keys",
    "fal_queue_url",
    "fal_poll_interval_seconds",
    "fal_inputs",
    "local_output_long_side_pixels",
    "local_face_swap_min_face_pixels",
)


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and .env), with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]


def env_name(field: str) -> str:
    return f"BOOTHGATE_{field.upper()}"


def settings_table() -> str:
    """The manual's settings table, made from the field descriptions (tests keep docs/settings.md in sync)."""
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
