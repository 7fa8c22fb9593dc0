"""Issue 28's model and endpoint facts, against the wire-format fakes with the real clients, and fields a
model refused remembered in the database (across a restart) with a "forget" on the settings page.

Facts as read from the services' public docs on 2026-12-02 (docs/providers-field.md): fal retired
`fal-ai/birefnet` for `fal-ai/birefnet/v2` and serves Nano Banana 2.1 as `google/nano-banana-2.1/edit`; fal's
status URLs take owner/app only; Seedream 4.5 needs at least 1920×1920 pixels' worth; OpenAI says to omit
input_fidelity for gpt-image-2; Turbotext's `available_api` lists objects; Gemini prices images by size.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.deadline import Deadline
from boothgate.providers import fal_models
from boothgate.providers.base import Kind, ProviderContext, ProviderRequest
from boothgate.providers.capabilities import RefusedCapabilities
from boothgate.providers.fal import FalOptions, FalProvider
from boothgate.providers.gemini import GeminiProvider
from boothgate.providers.openai import OpenAIOptions, OpenAIProvider
from boothgate.settings import Settings, get_settings
from boothgate.storage.db import Database
from boothgate.web.app import create_app
from tests.conftest import Booth, booth_settings
from tests.fakes.fal import FakeFal
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import serve
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, prepared

FAL_KEY = "fal-field-test:secret-0123456789"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture(scope="module")
def fal_server() -> Iterator[tuple[FakeFal, str]]:
    fake = FakeFal(api_key=FAL_KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="module")
def openai_server() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url + "/v1"


def request(options: Any, kind: Kind = Kind.face_swap, size: tuple[int, int] = (320, 240)) -> ProviderRequest:
    return ProviderRequest(
        job_id="job",
        kind=kind,
        photo=prepared(*size, PHOTO_TINT),
        reference=prepared(200, 300, REFERENCE_TINT, fmt="PNG"),
        prompt="at the seaside",
        options=options,
        deadline=Deadline.after(5.0),
    )


# --- fal ------------------------------------------------------------------------------------------


def test_the_curated_fal_ids_are_todays() -> None:
    assert fal_models.DEFAULT_MODEL == "google/nano-banana-2.1/edit"
    assert "fal-ai/birefnet/v2" in fal_models.CURATED and "fal-ai/birefnet" not in fal_models.CURATED
    assert all(m.price_checked for m in fal_models.CURATED.values())
    # Nano Banana 2.1 on fal, per fal's guide read 2026-12-03 (token-billed: ≈ $0.040 at 1K, $0.134 at 4K).
    nano = fal_models.CURATED["google/nano-banana-2.1/edit"]
    assert [fal_models.price(nano, r) for r in ("1K", "2K", "4K")] == [0.040, 0.062, 0.134]
    assert nano.price_checked == "2026-12-03"
    # A slot saved with a retired id runs today's.
    assert FalOptions(model="fal-ai/birefnet").model == "fal-ai/birefnet/v2"
    assert FalOptions(model="fal-ai/nano-banana-2/edit").resolved().id == "google/nano-banana-2.1/edit"


async def test_a_slot_with_a_retired_id_reaches_the_new_endpoint(
    fal_server: tuple[FakeFal, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake, url = fal_server
    fake.reset()
    settings = booth_settings(tmp_path, fal_api_key=FAL_KEY, fal_queue_url=url, fal_poll_interval_seconds=0.05)
    fal = FalProvider(ProviderContext(settings, http))
    result = await fal.run(request(FalOptions(model="fal-ai/nano-banana-2/edit")))
    assert result.data and fake.last.model == "google/nano-banana-2.1/edit"
    assert fake.polls  # polled on owner/app status URLs (the fake answers 405 to an endpoint sub-path)


async def test_fal_check_polls_owner_app_and_a_bad_key_is_refused(
    fal_server: tuple[FakeFal, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake, url = fal_server
    fake.reset()
    good = FalProvider(ProviderContext(booth_settings(tmp_path, fal_api_key=FAL_KEY, fal_queue_url=url), http))
    assert (await good.check()).ok
    bad = FalProvider(ProviderContext(booth_settings(tmp_path, fal_api_key="nope:nope", fal_queue_url=url), http))
    verdict = await bad.check()
    assert not verdict.ok and "refused" in verdict.message
    # A queue address that answers 404 for the app (not for the request) is not "accepted".
    wrong = FalProvider(
        ProviderContext(booth_settings(tmp_path, fal_api_key=FAL_KEY, fal_queue_url=url + "/elsewhere"), http)
    )
    assert not (await wrong.check()).ok
    assert fake.submits == []  # nothing paid


@pytest.mark.parametrize("width,height", [(1000, 1000), (4000, 1000), (1000, 3000), (1234, 567), (641, 1999), (7, 3)])
def test_seedream_size_is_never_below_fals_minimum(width: int, height: int) -> None:
    model = fal_models.CURATED["fal-ai/bytedance/seedream/v4.5/edit"]
    size = fal_models.shaped_size(width, height, model.size_pixels, min_pixels=model.min_pixels)
    assert size["width"] * size["height"] >= 1920 * 1920
    assert size["width"] % 16 == 0 and size["height"] % 16 == 0
    assert math.isclose(size["width"] / size["height"], width / height, rel_tol=0.05)


# --- Gemini: 4K priced as 4K -------------------------------------------------------------------------


def test_gemini_prices_follow_the_image_size(http: httpx.AsyncClient) -> None:
    gemini = GeminiProvider(ProviderContext(get_settings(), http))
    assert gemini.price_usd("gemini-nano-banana-2.1") == pytest.approx(0.0336)
    assert gemini.price_usd("gemini-nano-banana-2.1", "4K") == pytest.approx(0.0756)
    assert gemini.price_usd("gemini-3-pro-image", "4K") == pytest.approx(0.24)
    assert gemini.estimated_cost_usd({"image_size": "2K"}) == pytest.approx(0.0504)
    # A plain number still works for a model priced the same at every size.
    custom = GeminiProvider(ProviderContext(get_settings(gemini_prices_usd='{"my-model": 0.5}'), http))
    assert custom.price_usd("my-model", "4K") == 0.5
    assert get_settings().gemini_prices_checked == "2026-12-02"


def test_openai_prices_follow_quality_and_size(http: httpx.AsyncClient) -> None:
    openai = OpenAIProvider(ProviderContext(get_settings(), http))
    assert openai.price_usd("gpt-image-2", "low", "1024x1024") == pytest.approx(0.006)
    assert openai.price_usd("gpt-image-2", "high", "1024x1536") == pytest.approx(0.165)
    assert openai.price_usd("gpt-image-2", "medium", "1536x1008") == pytest.approx(0.041)  # a free size: nearest
    assert openai.price_usd("gpt-image-2", "high", "auto") == pytest.approx(0.211)  # unknown: the dearest
    assert openai.price_usd("gpt-image-1.5", "low", "1024x1024") == get_settings().openai_price_low_usd
    assert openai.estimated_cost_usd({"quality": "high", "size": "1536x1024"}) == pytest.approx(0.165)
    assert get_settings().openai_prices_checked == "2026-12-03"
    with pytest.raises(ValueError, match="prices by quality and size"):
        get_settings(openai_prices_usd='{"gpt-image-2": {"low": "cheap"}}')


# --- OpenAI: a refused field is asked once, and not again after a restart ------------------------------


def test_openai_defaults_have_no_shut_down_models() -> None:
    settings = get_settings()
    assert "gpt-image-1.5" not in settings.openai_input_fidelity_models
    assert "gpt-image-1-mini" not in settings.openai_input_fidelity_models
    assert "gpt-image-2.6-sunburst" in settings.openai_free_size_models
    assert (settings.openai_price_low_usd, settings.openai_price_medium_usd) == (0.006, 0.053)


async def started_db(path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{path / 'boothgate.db'}")
    await db.migrate()
    return db


async def openai_with(db: Database, http: httpx.AsyncClient, url: str) -> OpenAIProvider:
    refusals = RefusedCapabilities(db)
    await refusals.load()
    settings: Settings = get_settings(
        openai_api_key=OPENAI_KEY, openai_base_url=url, openai_input_fidelity_models="gpt-image-2"
    )
    return OpenAIProvider(ProviderContext(settings, http, refusals=refusals))


async def test_a_refused_field_is_asked_once_and_not_after_a_restart(
    openai_server: tuple[FakeOpenAI, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake, url = openai_server
    fake.reset()
    fake.refused_fields = {"gpt-image-2": {"input_fidelity"}}
    db = await started_db(tmp_path)
    first = await openai_with(db, http, url)
    result = await first.run(request(OpenAIOptions()))
    assert result.data and result.notes["dropped_fields"] == ["input_fidelity"]
    assert ["input_fidelity" in r.fields for r in fake.received] == [True, False]
    await first.aclose()
    await db.dispose()

    db = await started_db(tmp_path)  # "a restart": a new database engine, a new memory loaded from it
    second = await openai_with(db, http, url)
    await second.run(request(OpenAIOptions()))
    assert ["input_fidelity" in r.fields for r in fake.received] == [True, False, False]
    [refused] = second.describe()["refused_fields"]
    assert (refused["model"], refused["field"]) == ("gpt-image-2", "input_fidelity")
    assert "Unknown parameter" in refused["message"] and OPENAI_KEY not in refused["message"]
    # Forgotten: the next call sends the field again.
    assert await second.context.refusals.forget("openai", "gpt-image-2", "input_fidelity")
    fake.refused_fields = {}
    await second.run(request(OpenAIOptions()))
    assert "input_fidelity" in fake.last.fields
    await second.aclose()
    await db.dispose()


# --- the settings page and its API ----------------------------------------------------------------


async def test_settings_page_lists_refusals_and_keys_and_forget_works(tmp_path: Path) -> None:
    settings = booth_settings(
        tmp_path,
        gemini_api_key="gemini-key-one-0000000000000001",
        gemini_api_keys="gemini-key-two-0000000000000002",
    )
    app = create_app(settings, {})
    with serve(app) as url:
        booth = Booth(url, settings, app)
        await booth.services.registry.context.refusals.remember("fal", "fal-ai/x/y", "resolution", "not allowed")
        async with booth.api() as client:
            page = (await client.get("/settings?lang=en")).text
            assert "fal-ai/x/y" in page and "Forget" in page and "Prices checked on 2026-12-02" in page
            assert "Prices checked on 2026-12-03" in page  # OpenAI's table by quality and size
            assert "gemi…0001" in page and "gemi…0002" in page
            assert "gemini-key-one-0000000000000001" not in page
            report = (await client.get("/api/providers/field")).json()
            [gemini] = [p for p in report if p["name"] == "gemini"]
            assert [k["key"] for k in gemini["keys"]] == ["gemi…0002", "gemi…0001"]
            assert (await client.get("/api/providers/fal/refused")).json()[0]["field"] == "resolution"
            gone = await client.delete(
                "/api/providers/fal/refused", params={"model": "fal-ai/x/y", "field": "resolution"}
            )
            assert gone.status_code == 200
            again = await client.delete(
                "/api/providers/fal/refused", params={"model": "fal-ai/x/y", "field": "resolution"}
            )
            assert again.status_code == 404
            assert (await client.get("/api/providers/fal/refused")).json() == []
            page = (await client.get("/settings?lang=ru")).text
            assert "Провайдеры в работе" in page


# --- fal: LoRA styles and AI upscale ------------------------------------------------------------------


PRINT_CASES = [
    # (slot's result shape, its size, the photo's upright size, the result the fake draws) → print size
    ("fixed", "1350x900", (3000, 2000), (360, 240), (1350, 900)),  # 3:2 landscape, long side above the cap
    ("fixed", "900x1350", (2000, 3000), (240, 360), (900, 1350)),  # 2:3 portrait
    ("fixed", "1200x900", (4000, 3000), (320, 240), (1200, 900)),  # 4:3 landscape
    ("fixed", "900x1200", (3000, 4000), (240, 320), (900, 1200)),  # 3:4 portrait
    ("match_photo", None, (1800, 1200), (360, 240), (600, 400)),  # the photo's shape, long side capped at 600
    ("match_photo", None, (1200, 1800), (240, 360), (400, 600)),
]


@pytest.mark.parametrize(("shape", "fixed", "photo_size", "drawn", "printed"), PRINT_CASES)
async def test_an_upscale_reaches_the_print_size_for_every_shape(
    fal_server: tuple[FakeFal, str],
    http: httpx.AsyncClient,
    tmp_path: Path,
    shape: str,
    fixed: str | None,
    photo_size: tuple[int, int],
    drawn: tuple[int, int],
    printed: tuple[int, int],
) -> None:
    """The upscaler's target is the size shaping answers in: a fixed print size as set even when its long side
    is above BOOTHGATE_RESULT_LONG_SIDE_PIXELS (it was capped by it, so a 1350×900 print got a 720×480 upscale),
    the photo's shape capped by it otherwise; portrait and landscape, 2:3 and 4:3."""
    from boothgate.run import shaping
    from boothgate.storage.models import Slot

    fake, url = fal_server
    fake.reset()
    settings = booth_settings(
        tmp_path, fal_api_key=FAL_KEY, fal_queue_url=url, fal_poll_interval_seconds=0.05, fal_upscale_min_seconds=1.0,
        result_long_side_pixels=600,
    )  # fmt: skip
    slot = Slot(provider="fal", number=1, kind="prompt", result_shape=shape, result_size=fixed)
    assert shaping.print_size(slot, photo_size, settings.result_long_side_pixels) == printed
    job = request(FalOptions(upscale_model="fal-ai/esrgan"), kind=Kind.prompt, size=drawn)
    job.result_aspect = shaping.result_aspect(slot, photo_size)
    job.print_size = shaping.print_size(slot, photo_size, settings.result_long_side_pixels)
    result = await FalProvider(ProviderContext(settings, http)).run(job)
    assert [s.model for s in fake.submits] == ["google/nano-banana-2.1/edit", "fal-ai/esrgan"]
    width, height = (int(v) for v in result.notes["upscaled_size"].split("x"))
    assert width >= printed[0] and height >= printed[1], (result.notes["upscale"], printed)
    assert (width, height) == (drawn[0] * fake.last.body["scale"], drawn[1] * fake.last.body["scale"])
    assert result.notes["print_size"] == f"{printed[0]}x{printed[1]}" and "short" not in result.notes["upscale"]


async def test_an_upscale_that_cannot_reach_the_print_size_says_so(
    fal_server: tuple[FakeFal, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A landscape result for a portrait print needs more than the ×4 an upscaler is asked for: it is enlarged
    ×4 and the notes say the print size was not reached (shaping resamples the rest)."""
    fake, url = fal_server
    fake.reset()
    settings = booth_settings(
        tmp_path, fal_api_key=FAL_KEY, fal_queue_url=url, fal_poll_interval_seconds=0.05, fal_upscale_min_seconds=1.0
    )
    job = request(FalOptions(upscale_model="fal-ai/esrgan"), kind=Kind.prompt, size=(360, 240))
    job.print_size = (900, 1350)
    result = await FalProvider(ProviderContext(settings, http)).run(job)
    assert fake.last.body["scale"] == 4 and result.notes["upscaled_size"] == "1440x960"
    assert "short of the print size" in result.notes["upscale"]


async def test_a_fal_lora_slot_sends_loras_as_set(
    fal_server: tuple[FakeFal, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake, url = fal_server
    fake.reset()
    settings = booth_settings(tmp_path, fal_api_key=FAL_KEY, fal_queue_url=url, fal_poll_interval_seconds=0.05)
    fal = FalProvider(ProviderContext(settings, http))
    loras = [
        {"path": "https://example.com/weights/our-style.safetensors", "scale": 0.8},
        {"path": "https://example.com/weights/film-grain.safetensors", "scale": 1.2},
    ]
    result = await fal.run(request(FalOptions(model="fal-ai/flux-kontext-lora", loras=loras), kind=Kind.prompt))
    assert result.data
    sent = fake.last
    assert sent.model == "fal-ai/flux-kontext-lora"
    assert sent.body["loras"] == loras
    assert sent.body["resolution_mode"] == "match_input" and len(sent.images) == 1  # the photo
    with pytest.raises(ValueError, match="loras"):
        FalOptions(model="google/nano-banana-2.1/edit", loras=loras)


async def test_an_upscale_slot_answers_at_the_print_size_and_skips_when_time_is_short(
    fal_server: tuple[FakeFal, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake, url = fal_server
    fake.reset()
    settings = booth_settings(
        tmp_path, fal_api_key=FAL_KEY, fal_queue_url=url, fal_poll_interval_seconds=0.05, fal_upscale_min_seconds=2.0
    )
    fal = FalProvider(ProviderContext(settings, http))
    job = request(FalOptions(upscale_model="fal-ai/esrgan"), kind=Kind.prompt)
    job.result_aspect = (960, 720)  # the print size; the fake draws at the photo's 320×240
    result = await fal.run(job)
    assert [s.model for s in fake.submits] == ["google/nano-banana-2.1/edit", "fal-ai/esrgan"]
    assert fake.last.body["scale"] == 3
    import io

    from PIL import Image

    with Image.open(io.BytesIO(result.data)) as im:
        assert im.size == (960, 720)
    assert result.notes["upscale"] == "fal-ai/esrgan ×3"
    # The upscale is paid too: fal's price per megapixel of the upscaled 960×720 image, added to the job's cost.
    upscale_cost = 960 * 720 / 1_000_000 * settings.fal_upscale_price_per_megapixel_usd
    assert result.notes["upscale_cost_usd"] == pytest.approx(upscale_cost) and upscale_cost > 0
    assert result.notes["cost_usd"] == pytest.approx(0.040 + upscale_cost)  # Nano Banana 2.1 at 1K + the upscale
    own_price = request(FalOptions(upscale_model="fal-ai/esrgan", upscale_price_usd=0.002), kind=Kind.prompt)
    own_price.result_aspect = (960, 720)
    fixed = await fal.run(own_price)
    assert fixed.notes["cost_usd"] == pytest.approx(0.040 + 0.002)  # the slot's own upscale price

    # An upscale needs 10 s here and the photo has 5 s in all: the result keeps its size, no upscaler is paid.
    hurried = FalProvider(ProviderContext(settings.model_copy(update={"fal_upscale_min_seconds": 10.0}), http))
    short = request(FalOptions(upscale_model="fal-ai/esrgan"), kind=Kind.prompt)
    short.result_aspect = (960, 720)
    fake.submits.clear()
    skipped = await hurried.run(short)
    assert [s.model for s in fake.submits] == ["google/nano-banana-2.1/edit"]
    assert skipped.notes["upscale"] == "skipped: too little time left"
    assert "upscale_cost_usd" not in skipped.notes and skipped.notes["cost_usd"] == pytest.approx(0.040)
