"""The fal.ai tab through the whole booth path: `POST /booth/fal/N` on a real socket, the spine, the
queue protocol over httpx pointed at the loopback fake by BOOTHGATE_FAL_QUEUE_URL, and back.

One boothgate server and one fake serve the whole module; each test configures its own slot and posts
its own photo, and the fake is reset between tests.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import BoothAnswer
from boothgate.providers import fal_models
from boothgate.providers.base import ProviderContext
from boothgate.providers.fal import FalProvider
from tests.conftest import Booth, Tab, booth_settings, open_image
from tests.fakes.fal import FakeFal
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, encode, gradient, looks_inverted, mean_colour
from tests.waits import server_seconds

KEY = "fal-booth-test:secret-0123456789"
DEADLINE = 3.0
SLACK = 0.5
POLL = 0.1
NANO, SEEDREAM, KONTEXT, BIREFNET = (
    "google/nano-banana-2.1/edit",
    "fal-ai/bytedance/seedream/v4.5/edit",
    "fal-ai/flux-pro/kontext",
    "fal-ai/birefnet/v2",
)


TAB = "fal"  # the module's server and fake: `tab_rig` in tests/conftest.py
TAB_SETTINGS = {"deadline_seconds": DEADLINE, "fal_poll_interval_seconds": POLL}


@pytest.fixture
def fake(tab: Tab) -> FakeFal:
    return tab.fake  # type: ignore[no-any-return]


@pytest.fixture
def booth(tab: Tab) -> Booth:
    return tab.booth


@pytest.fixture
def fake_server(tab_rig: Tab) -> tuple[FakeFal, str]:
    """The fake and the address of its gate (which passes everything without a fault marker)."""
    return tab_rig.fake, tab_rig.gate.url + ""


_seed = iter(range(1, 10_000))


def photo(width: int = 1200, height: int = 800) -> bytes:
    tint = tuple(max(0, c - next(_seed) % 7) for c in PHOTO_TINT)
    return encode(gradient(width, height, tint))  # type: ignore[arg-type]


REFERENCE = encode(gradient(600, 900, REFERENCE_TINT))


async def slot(booth: Booth, number: int, kind: str = "prompt", **fields: Any) -> None:
    fields.setdefault("prompt", f"as knights at a castle {number}")
    await booth.configure("fal", number, kind=kind, **fields)
    if kind in ("face_swap", "background"):
        await booth.set_reference("fal", number, REFERENCE)


async def post(booth: Booth, number: int, data: bytes | None = None) -> tuple[BoothAnswer, float]:
    started = time.monotonic()
    answer = await booth.post("fal", number, data or photo())
    return answer, time.monotonic() - started


def error_of(answer: BoothAnswer) -> str:
    return str(answer.json()["error"])


def message_of(answer: BoothAnswer) -> str:
    return str(answer.json()["message"])


# --- each kind on each curated model ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "kind", "model", "endpoint"),
    [
        (1, "face_swap", NANO, NANO),
        (2, "background", NANO, NANO),
        (3, "prompt", NANO, NANO),
        (4, "face_swap", SEEDREAM, SEEDREAM),
        (5, "prompt", SEEDREAM, SEEDREAM),
        (6, "prompt", KONTEXT, KONTEXT),
        (7, "face_swap", KONTEXT, KONTEXT + "/multi"),
        (8, "background", KONTEXT, KONTEXT + "/multi"),
    ],
)
async def test_each_kind_end_to_end(
    booth: Booth, fake: FakeFal, number: int, kind: str, model: str, endpoint: str
) -> None:
    await slot(booth, number, kind, options={"model": model})
    answer, _ = await post(booth, number, photo(1500, 1000))  # 3:2

    assert answer.status == 200, answer.body[:300]
    assert answer.content_type == "image/jpeg"
    [sent] = fake.submits
    assert sent.model == endpoint
    assert sent.authorization == f"Key {KEY}"
    expected = 2 if kind != "prompt" else 1
    assert len(sent.images) == expected
    assert all(image.source == "data_uri" and image.mime == "image/jpeg" for image in sent.images)
    assert sent.images[0].width / sent.images[0].height == pytest.approx(1.5, abs=0.01)
    if kind != "prompt":
        assert (sent.images[1].width, sent.images[1].height) == (600, 900)
    assert f"as knights at a castle {number}" in sent.prompt
    if model == SEEDREAM:
        size = sent.body["image_size"]
        assert size["width"] % 16 == 0 and size["height"] % 16 == 0
        assert size["width"] / size["height"] == pytest.approx(1.5, abs=0.02)
        assert "image_urls" in sent.body
    else:
        assert sent.body["aspect_ratio"] == "3:2"
    if model == NANO:
        assert sent.body["resolution"] == "1K" and sent.body["output_format"] == "jpeg"
    if endpoint == KONTEXT:
        assert "image_url" in sent.body and "image_urls" not in sent.body
    if endpoint.endswith("/multi"):
        assert len(sent.body["image_urls"]) == 2

    # The queue was walked through, with the URLs the fake returned; nothing was cancelled.
    job_polls = [rid for rid, _ in fake.polls if rid == sent.request_id]
    assert len(job_polls) == 3  # IN_QUEUE, IN_PROGRESS, COMPLETED
    assert fake.results == [sent.request_id] and fake.cancels == []

    assert looks_inverted(mean_colour(answer.body, (0.05, 0.1, 0.45, 0.9)), PHOTO_TINT)
    right = mean_colour(answer.body, (0.55, 0.1, 0.95, 0.9))
    assert looks_inverted(right, REFERENCE_TINT if kind != "prompt" else PHOTO_TINT)

    job = await booth.job(answer)
    notes = job["provider_notes"]
    assert notes["model"] == model and notes["endpoint"] == endpoint and notes["polls"] == 3
    assert job["cost_usd"] == pytest.approx(fal_models.CURATED[model].price_usd)
    assert KEY not in str(job)


async def test_birefnet_cuts_out_and_composites_onto_the_reference(booth: Booth, fake: FakeFal) -> None:
    await slot(booth, 9, "background", options={"model": BIREFNET})
    answer, _ = await post(booth, 9, photo(1200, 800))
    assert answer.status == 200, answer.body[:300]
    [sent] = fake.submits
    assert sent.model == BIREFNET
    assert len(sent.images) == 1  # only the photo goes to fal; the background stays here
    assert sent.body["output_format"] == "png"
    result = open_image(answer.body)
    assert result.size == (sent.images[0].width, sent.images[0].height)
    # Left half: the guests as photographed (not redrawn); right half: the slot's background.
    left = mean_colour(answer.body, (0.05, 0.1, 0.45, 0.9))
    right = mean_colour(answer.body, (0.55, 0.1, 0.95, 0.9))
    assert left[0] > 120 and left[2] < 80, left
    assert right[2] > 120 and right[0] < 80, right
    notes = (await booth.job(answer))["provider_notes"]
    assert notes["composited"] is True


async def test_birefnet_on_a_prompt_slot_is_refused_before_paying(booth: Booth, fake: FakeFal) -> None:
    await slot(booth, 10, "prompt", options={"model": BIREFNET})
    answer, _ = await post(booth, 10)
    assert answer.status == 503 and error_of(answer) == "slot_incomplete"
    assert fake.submits == []


async def test_options_reach_the_wire(booth: Booth, fake: FakeFal) -> None:
    options = {"model": NANO, "aspect_ratio": "9:16", "resolution": "2K", "extra_arguments": {"seed": 7}}
    await slot(booth, 11, options=options)
    answer, _ = await post(booth, 11)
    assert answer.status == 200
    body = fake.last.body
    assert body["aspect_ratio"] == "9:16" and body["resolution"] == "2K" and body["seed"] == 7
    assert (await booth.job(answer))["cost_usd"] == pytest.approx(0.062)  # the 2K price (fal's guide, 2026-12-03)


async def test_unknown_curated_model_is_refused_on_save(booth: Booth) -> None:
    async with booth.api() as client:
        response = await client.put("/api/slots/fal/12", json={"options": {"model": "fal-ai/whatever"}})
        assert response.status_code == 422, response.text  # the API's field errors
        assert "model" in response.text
        response = await client.put("/api/slots/fal/12", json={"options": {"model": "custom", "custom_model": ""}})
        assert response.status_code == 422, response.text  # the API's field errors
        assert "model" in response.text


async def test_custom_model_with_its_own_price(booth: Booth, fake: FakeFal) -> None:
    options = {"model": "custom", "custom_model": "fal-ai/nano-banana-pro/edit", "price_usd": 0.15}
    await slot(booth, 12, options=options)
    answer, _ = await post(booth, 12)
    assert answer.status == 200
    assert fake.last.model == "fal-ai/nano-banana-pro/edit" and "image_urls" in fake.last.body
    assert (await booth.job(answer))["cost_usd"] == pytest.approx(0.15)


# --- failures -------------------------------------------------------------------------------------


async def test_stuck_request_answers_504_in_time_then_is_cancelled_and_never_polled_again(
    booth: Booth, fake: FakeFal
) -> None:
    await slot(booth, 13)
    fake.default_mode = "stuck"
    answer, elapsed = await post(booth, 13)
    answered = time.monotonic()
    assert answer.status == 504 and error_of(answer) == "deadline"
    assert elapsed <= DEADLINE + SLACK
    await asyncio.sleep(5 * POLL + 0.5)  # time for several more polls, if anything were still polling
    [sent] = fake.submits
    assert len(fake.polls) >= 5
    assert all(at <= answered for _, at in fake.polls), "polled after the booth had its answer"
    [(cancelled, at, authorization)] = fake.cancels
    assert cancelled == sent.request_id and authorization == f"Key {KEY}"
    assert at <= answered + 1.0
    assert fake.results == []


async def test_invalid_key_answers_502_auth_and_shows_on_the_tab(booth: Booth, fake: FakeFal) -> None:
    await slot(booth, 14)
    fake.push("invalid_key")
    answer, _ = await post(booth, 14)
    assert answer.status == 502 and error_of(answer) == "provider_auth"
    assert "BOOTHGATE_FAL_API_KEY" in message_of(answer) and KEY not in answer.body.decode()
    assert "BOOTHGATE_FAL_API_KEY" in str(await fal_tab(booth, "last_error"))
    assert (await post(booth, 14))[0].status == 200
    assert await fal_tab(booth, "last_error") is None


async def test_unknown_custom_model_answers_502_provider_model(booth: Booth, fake: FakeFal) -> None:
    await slot(booth, 15, options={"model": "custom", "custom_model": "someone/no-such-model"})
    answer, _ = await post(booth, 15)
    assert answer.status == 502 and error_of(answer) == "provider_model"
    assert "someone/no-such-model" in message_of(answer)
    await slot(booth, 15, options={})
    assert (await post(booth, 15))[0].status == 200  # clears the tab's error


async def test_retryable_503_then_an_image(booth: Booth, fake: FakeFal) -> None:
    await slot(booth, 16)
    fake.push("unavailable")
    answer, _ = await post(booth, 16)
    assert answer.status == 200 and len(fake.submits) == 2
    assert (await booth.job(answer))["provider_notes"]["problems"] == ["submit 503"]


async def test_429_with_a_short_retry_after_is_waited_out(booth: Booth, fake: FakeFal) -> None:
    await slot(booth, 17)
    fake.push("rate_limited")
    fake.retry_after = "0.5"
    answer, elapsed = await post(booth, 17)
    assert answer.status == 200 and len(fake.submits) == 2 and elapsed >= 0.5


async def test_429_asking_for_longer_than_the_deadline_answers_429(booth: Booth, fake: FakeFal) -> None:
    await slot(booth, 18)
    fake.default_mode = "rate_limited"
    fake.retry_after = "30"
    answer, elapsed = await post(booth, 18)
    assert answer.status == 429 and error_of(answer) == "rate_limited"
    assert len(fake.submits) == 1
    # answered at once, not after waiting out the deadline (that would be ~2.75 s): the server's own clock
    assert await server_seconds(booth, answer) < DEADLINE - 1.0
    assert elapsed < DEADLINE, f"the booth waited {elapsed:.2f} s"


@pytest.mark.parametrize(
    ("mode", "status", "code", "words"),
    [
        ("validation", 502, "provider_error", "image_urls.0: Could not download the image"),
        ("balance", 502, "provider_billing", "Exhausted balance"),
        ("failed", 502, "provider_error", "Worker crashed"),
        ("completed_error", 502, "provider_error", "Internal error in the model"),
        ("nsfw", 502, "provider_refused", "has_nsfw_concepts"),
        ("result_422", 502, "provider_error", "prompt: The prompt is too long"),
        ("no_image", 502, "provider_no_image", "without an image"),
    ],
)
async def test_failure_classes(booth: Booth, fake: FakeFal, mode: str, status: int, code: str, words: str) -> None:
    await slot(booth, 19, options={"model": KONTEXT})
    fake.push(mode)
    answer, _ = await post(booth, 19)
    assert answer.status == status and error_of(answer) == code, answer.body
    assert words in message_of(answer)
    assert len(fake.submits) == 1  # none of these is worth another paid attempt
    if code == "provider_billing":
        await post(booth, 19)  # clears the tab's error for the next tests


async def test_endless_retryable_503_answers_502_before_the_deadline(booth: Booth, fake: FakeFal) -> None:
    await slot(booth, 20)
    fake.default_mode = "unavailable"
    answer, elapsed = await post(booth, 20)
    assert answer.status == 502 and error_of(answer) == "provider_unavailable"
    assert elapsed <= DEADLINE + SLACK and len(fake.submits) >= 2


# --- inputs as media links, statistics, model list and check -----------------------------------------


async def test_media_links_instead_of_data_uris(booth: Booth, fake: FakeFal) -> None:
    async with booth.api() as client:
        response = await client.put("/api/settings", json={"fal_inputs": "media_link"})
        assert response.status_code == 200, response.text
        try:
            await slot(booth, 1, "face_swap", options={"model": NANO})
            answer, _ = await post(booth, 1)
        finally:
            reset = await client.put("/api/settings", json={"fal_inputs": None})
            assert reset.status_code == 200
    assert answer.status == 200
    sent = fake.last
    assert [image.source for image in sent.images] == ["link", "link"]
    assert all(url.startswith(booth.url + "/media/") for url in sent.body["image_urls"])


async def test_statistics_count_the_tab_and_its_cost(booth: Booth, fake: FakeFal) -> None:
    before = (await booth.stats())["providers"]["fal"]["all_time"]
    await slot(booth, 2, "prompt", options={"model": SEEDREAM})
    assert (await post(booth, 2))[0].status == 200
    after = (await booth.stats())["providers"]["fal"]["all_time"]
    assert after["succeeded"] == before["succeeded"] + 1
    price = fal_models.CURATED[SEEDREAM].price_usd
    assert after["cost_usd"] == pytest.approx(before["cost_usd"] + price, abs=1e-4)


async def test_list_models_and_check(fake_server: tuple[FakeFal, str], tmp_path: Path) -> None:
    fake, url = fake_server
    fake.reset()
    async with httpx.AsyncClient() as http:
        provider = FalProvider(ProviderContext(booth_settings(tmp_path, fal_api_key=KEY, fal_queue_url=url), http))
        models = await provider.list_models()
        assert models is not None and [m.id for m in models] == list(fal_models.CURATED)
        assert (await provider.check()).ok
        wrong = FalProvider(ProviderContext(booth_settings(tmp_path, fal_api_key="x:y", fal_queue_url=url), http))
        verdict = await wrong.check()
        assert not verdict.ok and "BOOTHGATE_FAL_API_KEY" in verdict.message
    assert fake.submits == []  # nothing paid


async def fal_tab(booth: Booth, field: str) -> Any:
    async with booth.api() as client:
        providers = (await client.get("/api/providers")).json()
    [tab] = [p for p in providers if p["name"] == "fal"]
    return tab[field]


# --- AI upscale to the print size -------------------------------------------------------------------


async def test_an_upscale_slot_answers_a_fixed_print_size_above_the_long_side_cap(
    booth_factory: Any, fake_server: tuple[FakeFal, str]
) -> None:
    """A fixed print size is the upscaler's target as set, even when its long side is above
    BOOTHGATE_RESULT_LONG_SIDE_PIXELS (the booth path used to cap it: ×2 for a print that needs ×4)."""
    fake, url = fake_server
    fake.reset()
    own = booth_factory(
        {"fal": FalProvider}, fal_api_key=KEY, fal_queue_url=url, fal_poll_interval_seconds=POLL,
        fal_upscale_min_seconds=0.5, result_long_side_pixels=600, deadline_seconds=5.0,
    )  # fmt: skip
    await slot(own, 1, "prompt", result_shape="fixed", result_size="900x1350",
               options={"model": NANO, "upscale_model": "fal-ai/esrgan"})  # fmt: skip
    answer, _ = await post(own, 1, photo(240, 360))  # 2:3 portrait; the fake draws at the photo's size
    assert answer.status == 200, answer.body[:300]
    assert [s.model for s in fake.submits] == [NANO, "fal-ai/esrgan"] and fake.last.body["scale"] == 4
    with open_image(answer.body) as im:
        assert im.size == (900, 1350)
    async with own.api() as client:
        notes = (await client.get(f"/api/jobs/{answer.headers['x-job-id']}")).json()["provider_notes"]
    assert notes["print_size"] == "900x1350" and notes["upscaled_size"] == "960x1440"
