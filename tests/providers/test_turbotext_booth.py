"""Turbotext through the whole booth path: POST /booth/turbotext/N → boothgate → loopback Turbotext,
which downloads the photo and reference from boothgate's own /media links and answers by polling or
by posting to boothgate's /hooks/turbotext route."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.conftest import Booth, Tab, make_jpeg
from tests.fakes.turbotext import FakeTurbotext
from tests.waits import eventually

PHOTO = make_jpeg(640, 480, seed=11)
REFERENCE = make_jpeg(480, 640, seed=12)

Start = Callable[..., Tab]


@pytest.fixture
def start(tab_factory: Any) -> Start:
    """Start boothgate with the real Turbotext tab pointed at its fake (`tab_rig`'s shape in tests/conftest.py:
    through a fault gate, its public address set to itself); each test chooses its settings."""

    def start_tab(**overrides: Any) -> Tab:
        tab: Tab = tab_factory("turbotext", **{"deadline_seconds": 4.0, **overrides})
        return tab

    return start_tab


def difference(result: bytes, expected: np.ndarray) -> float:
    """Mean absolute pixel difference after bringing `expected` to the result's size."""
    with Image.open(io.BytesIO(result)) as im:
        got = np.asarray(im.convert("RGB"), dtype=np.float32)
    wanted = Image.fromarray(expected).resize((got.shape[1], got.shape[0]))
    return float(np.abs(got - np.asarray(wanted, dtype=np.float32)).mean())


def image(data: bytes, mirror: bool = False) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
        return np.asarray(ImageOps.mirror(rgb) if mirror else rgb)


async def slot(booth: Booth, number: int, kind: str, prompt: str = "", **fields: Any) -> None:
    await booth.configure("turbotext", number, kind=kind, prompt=prompt, **fields)
    if kind != "prompt":
        await booth.set_reference("turbotext", number, REFERENCE)


async def nothing_after(fake: FakeTurbotext, answered: float) -> None:
    """No request reaches Turbotext once the booth has its answer."""
    await asyncio.sleep(0.3)
    assert fake.incoming_after(answered) == []


# --- each kind, each mode ------------------------------------------------------------------------------

METHODS = {"face_swap": "deepfake_photo", "background": "mix_images", "prompt": "generate_image2image"}


@pytest.mark.parametrize("mode", ["polling", "webhook"])
@pytest.mark.parametrize("kind", ["face_swap", "background", "prompt"])
async def test_each_kind_in_each_mode(start: Start, kind: str, mode: str) -> None:
    tab = start(turbotext_mode=mode)
    booth, fake = tab.booth, tab.fake
    await slot(booth, 3, kind, prompt="neon city at night")

    answer = await booth.post("turbotext", 3, PHOTO)
    answered = time.monotonic()

    assert answer.status == 200, answer.body[:300]
    assert answer.content_type == "image/jpeg"
    # The fake mirrors the guest photo it downloaded: the result is this guest's photo, not the reference.
    assert difference(answer.body, image(PHOTO, mirror=True)) < 8
    assert difference(answer.body, image(REFERENCE, mirror=True)) > 30
    [create] = fake.calls("create_queue")
    assert create.path == f"/api_ai/{METHODS[kind]}" and create.authorized
    fetched = {f.url: f.data for f in fake.fetches}
    photo_field = "url" if kind == "prompt" else "url_image_target"
    assert difference(fetched[create.form[photo_field]], image(PHOTO)) < 6
    if kind != "prompt":
        assert difference(fetched[create.form["url"]], image(REFERENCE)) < 6
    if mode == "webhook":
        assert create.form["webhook"].startswith(f"{booth.url}/hooks/turbotext/")
        assert fake.calls("get_result") == []
    else:
        assert "webhook" not in create.form and len(fake.calls("get_result")) == 2
    await nothing_after(fake, answered)


async def test_webhook_duplicates_are_answered_and_ignored(start: Start) -> None:
    tab = start(turbotext_mode="webhook")
    booth, fake = tab.booth, tab.fake
    fake.webhook_deliveries = 2
    await slot(booth, 1, "face_swap")
    answer = await booth.post("turbotext", 1, PHOTO)
    assert answer.status == 200
    await eventually(lambda: len(fake.deliveries) >= 2, "the fake's second webhook delivery")
    assert [status for _, _, status in fake.deliveries] == [200, 200]

    hook = fake.calls("create_queue")[0].form["webhook"]
    async with httpx.AsyncClient() as client:
        guessed = await client.post(hook.rsplit("/", 1)[0] + "/not-the-secret", json={"asyncid": 1})
        unknown = await client.post(hook, json={"success": True, "asyncid": 999})
    assert (guessed.status_code, unknown.status_code) == (404, 200)


async def test_webhook_mode_polls_once_when_the_delivery_is_lost(start: Start) -> None:
    tab = start(turbotext_mode="webhook", deadline_seconds=2.0)
    booth, fake = tab.booth, tab.fake
    fake.webhook_deliveries, fake.reconnects = 0, 0
    await slot(booth, 1, "background")
    answer = await booth.post("turbotext", 1, PHOTO)
    assert answer.status == 200, answer.body[:300]
    assert len(fake.calls("get_result")) == 1


# --- media links -------------------------------------------------------------------------------------


async def test_media_links_serve_only_until_the_deadline(start: Start) -> None:
    tab = start(deadline_seconds=1.5)
    booth, fake = tab.booth, tab.fake
    await slot(booth, 1, "face_swap")
    posted = time.monotonic()
    answer = await booth.post("turbotext", 1, PHOTO)
    assert answer.status == 200
    urls = [f.url for f in fake.fetches]
    assert len(urls) == 2 and all(url.startswith(f"{booth.url}/media/") for url in urls)

    async with httpx.AsyncClient() as client:
        token = urls[0].rsplit("/", 1)[1]
        guesses = [f"{booth.url}/media/{'x' * len(token)}", f"{booth.url}/media/{token[:-6]}.png"]
        assert [(await client.get(url)).status_code for url in guesses] == [404, 404]
        await asyncio.sleep(max(0.0, posted + 1.6 - time.monotonic()))
        assert [(await client.get(url)).status_code for url in urls] == [404, 404]


async def test_without_a_public_address_booth_posts_answer_503(start: Start) -> None:
    tab = start(public_base_url="")
    booth, fake = tab.booth, tab.fake
    await slot(booth, 1, "face_swap")
    answer = await booth.post("turbotext", 1, PHOTO)
    assert answer.status == 503
    body = answer.json()
    assert body["error"] == "provider_not_configured"
    assert "BOOTHGATE_PUBLIC_BASE_URL" in str(body["message"])
    assert fake.received == []


# --- failures ---------------------------------------------------------------------------------------------


async def test_failures_reach_the_booth_with_their_codes(start: Start) -> None:
    tab = start()
    booth, fake = tab.booth, tab.fake
    await slot(booth, 1, "face_swap")
    seeds = itertools.count(100)  # a new photo each time: an identical one would get the stored result

    async def post(**switches: Any) -> tuple[int, str, str]:
        fake.reset()
        for name, value in switches.items():
            setattr(fake, name, value)
        answer = await booth.post("turbotext", 1, make_jpeg(640, 480, seed=next(seeds)))
        if answer.status == 200:
            return 200, "", ""
        body = answer.json()
        return answer.status, str(body["error"]), str(body["message"])

    status, code, message = await post(mode="error")
    assert (status, code) == (502, "provider_billing") and "Недостаточно средств" in message
    assert (await post(mode="forbidden"))[:2] == (502, "provider_refused")
    assert (await post(mode="malformed"))[:2] == (502, "provider_error")
    assert (await post(create_failures=1))[0] == 200
    assert (await post(link_failures=1))[0] == 200
    status, code, message = await post(api_key="another-key")
    assert (status, code) == (502, "provider_auth") and "BOOTHGATE_TURBOTEXT_API_KEY" in message
    assert "tt-test-key" not in message


async def test_a_slow_job_answers_504_in_time_and_stops_asking(start: Start) -> None:
    tab = start(deadline_seconds=1.5)
    booth, fake = tab.booth, tab.fake
    fake.mode = "slow"
    await slot(booth, 1, "background")
    answer = await booth.post("turbotext", 1, PHOTO)
    answered = time.monotonic()
    assert answer.status == 504 and answer.json()["error"] == "deadline"
    assert answer.seconds < 1.5 + 0.5  # booth side, on a loaded machine; the server's own record is exact:
    async with booth.api() as client:
        job = (await client.get(f"/api/jobs/{answer.json()['job_id']}")).json()
    assert job["total_seconds"] <= 1.5
    await nothing_after(fake, answered)
