"""The Gemini tab through the whole booth path: `POST /booth/gemini/N` on a real socket, the spine,
the real google-genai SDK pointed at the loopback fake by the base-URL setting, and back.

One boothgate server and one fake serve the whole module (starting them costs more than most tests);
each test configures its own slot and posts its own photo, and the fake is reset between tests.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from boothgate.cli.booth_client import BoothAnswer
from tests.conftest import Booth, Tab
from tests.fakes.gemini import GeminiFake
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, encode, gradient, looks_inverted, mean_colour
from tests.waits import server_seconds

KEY = "booth-test-gemini-key"
DEADLINE = 3.0
SLACK = 0.5  # what the booth may wait past the deadline for the answer to travel back


TAB = "gemini"  # the module's server and fake: `tab_rig` in tests/conftest.py
TAB_SETTINGS = {"deadline_seconds": DEADLINE}


@pytest.fixture
def fake(tab: Tab) -> GeminiFake:
    return tab.fake  # type: ignore[no-any-return]


@pytest.fixture
def booth(tab: Tab) -> Booth:
    return tab.booth


@pytest.fixture
def fake_server(tab_rig: Tab) -> tuple[GeminiFake, str]:
    """The fake and the address of its gate (which passes everything without a fault marker)."""
    return tab_rig.fake, tab_rig.gate.url + ""


_seed = iter(range(1, 10_000))


def photo(width: int = 1200, height: int = 900) -> bytes:
    """A fresh photo each call (the booth reuses results for identical photos)."""
    tint = tuple(max(0, c - next(_seed) % 7) for c in PHOTO_TINT)
    return encode(gradient(width, height, tint))  # type: ignore[arg-type]


REFERENCE = encode(gradient(600, 900, REFERENCE_TINT))


async def slot(booth: Booth, number: int, kind: str = "prompt", **fields: Any) -> None:
    fields.setdefault("prompt", f"as pirates on ship {number}")
    await booth.configure("gemini", number, kind=kind, **fields)
    if kind in ("face_swap", "background"):
        await booth.set_reference("gemini", number, REFERENCE)


async def post(booth: Booth, number: int, data: bytes | None = None) -> tuple[BoothAnswer, float]:
    started = time.monotonic()
    answer = await booth.post("gemini", number, data or photo())
    return answer, time.monotonic() - started


def error_of(answer: BoothAnswer) -> str:
    return str(answer.json()["error"])


# --- success --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "kind"), [(1, "face_swap"), (2, "background"), (3, "prompt")])
async def test_each_kind_end_to_end(booth: Booth, fake: GeminiFake, number: int, kind: str) -> None:
    await slot(booth, number, kind)
    answer, _ = await post(booth, number, photo(2400, 1600))

    assert answer.status == 200, answer.body[:300]
    assert answer.content_type == "image/jpeg"  # Gemini's PNG converted to the slot's format
    [sent] = fake.received
    limit = booth.settings.provider_input_pixels
    expected_images = 2 if kind != "prompt" else 1
    assert len(sent.images) == expected_images
    assert all(image.mime == "image/jpeg" for image in sent.images)
    assert all(image.width * image.height <= limit for image in sent.images)
    assert sent.images[0].width / sent.images[0].height == pytest.approx(1.5, abs=0.01)
    assert f"as pirates on ship {number}" in sent.text
    assert sent.image_config["aspectRatio"] == "3:2"
    assert sent.api_key == KEY

    # The result is the fake's derivation of what it received: proof the photo (and reference) went out.
    assert looks_inverted(mean_colour(answer.body, (0.05, 0.1, 0.45, 0.9)), PHOTO_TINT)
    right = mean_colour(answer.body, (0.55, 0.1, 0.95, 0.9))
    assert looks_inverted(right, REFERENCE_TINT if kind != "prompt" else PHOTO_TINT)

    job = await booth.job(answer)
    notes = job["provider_notes"]
    assert notes["model"] == "gemini-nano-banana-2.1"
    assert notes["attempts"] == 1
    assert notes["usage"]["total_tokens"] == 2410
    assert job["cost_usd"] == pytest.approx(0.0336)
    assert KEY not in str(job)


async def test_slot_options_reach_the_wire(booth: Booth, fake: GeminiFake) -> None:
    options = {"model": "gemini-3-pro-image", "aspect_ratio": "9:16", "image_size": "2K"}
    await slot(booth, 4, options=options)
    answer, _ = await post(booth, 4)
    assert answer.status == 200
    assert fake.last.model == "gemini-3-pro-image"
    assert fake.last.image_config == {"aspectRatio": "9:16", "imageSize": "2K"}


async def test_invalid_slot_option_is_refused_by_the_api(booth: Booth) -> None:
    async with booth.api() as client:
        response = await client.put("/api/slots/gemini/5", json={"options": {"aspect_ratio": "7:5"}})
    assert response.status_code == 422, response.text  # the API's field errors
    assert "aspect_ratio" in response.text


async def test_thought_images_are_not_the_result(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 6)
    fake.push("thoughts")
    answer, _ = await post(booth, 6)
    assert answer.status == 200
    assert looks_inverted(mean_colour(answer.body, (0.05, 0.1, 0.45, 0.9)), PHOTO_TINT)


async def test_no_image_twice_then_an_image(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 7)
    fake.push("no_image", 2)
    answer, _ = await post(booth, 7)
    assert answer.status == 200
    assert len(fake.received) == 3
    notes = (await booth.job(answer))["provider_notes"]
    assert notes["attempts"] == 3 and notes["problems"] == ["NO_IMAGE", "NO_IMAGE"]
    assert notes["usage"]["total_tokens"] == 3 * 2410


async def test_text_only_then_an_image(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 8)
    fake.push("text_only")
    answer, _ = await post(booth, 8)
    assert answer.status == 200 and len(fake.received) == 2


async def test_429_with_a_short_retry_delay_is_waited_out(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 9)
    fake.push("rate_limited")
    fake.retry_delay = "0.5s"
    answer, elapsed = await post(booth, 9)
    assert answer.status == 200
    assert elapsed >= 0.5 and len(fake.received) == 2


async def test_503_then_an_image(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 10)
    fake.push("unavailable")
    answer, _ = await post(booth, 10)
    assert answer.status == 200 and len(fake.received) == 2


async def test_slow_within_the_deadline(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 11)
    fake.push("slow")
    fake.slow_seconds = 1.0
    answer, elapsed = await post(booth, 11)
    assert answer.status == 200 and elapsed >= 1.0


# --- failures -------------------------------------------------------------------------------------


async def test_slow_past_the_deadline_answers_504_in_time(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 12)
    fake.default_mode = "slow"
    fake.slow_seconds = 30
    answer, elapsed = await post(booth, 12)
    assert answer.status == 504 and error_of(answer) == "deadline"
    assert elapsed <= DEADLINE + SLACK, f"answered after {elapsed:.2f} s"
    assert (await booth.job(answer))["provider_notes"]["attempts"] == 1


async def test_endless_503_answers_502_before_the_deadline(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 13)
    fake.default_mode = "unavailable"
    answer, elapsed = await post(booth, 13)
    assert answer.status == 502 and error_of(answer) == "provider_unavailable"
    assert "503 UNAVAILABLE" in str(answer.json()["message"])
    assert await server_seconds(booth, answer) <= DEADLINE  # the server's own clock: within the deadline
    assert elapsed <= DEADLINE + SLACK  # the booth's stopwatch adds upload and the trip back
    assert len(fake.received) >= 2


async def test_prompt_blocked_answers_502_refused(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 14)
    fake.default_mode = "prompt_blocked"
    answer, _ = await post(booth, 14)
    assert answer.status == 502 and error_of(answer) == "provider_refused"
    assert "PROHIBITED_CONTENT" in str(answer.json()["message"])
    assert len(fake.received) == 1


async def test_candidate_blocked_answers_502_refused(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 15, kind="face_swap")
    fake.default_mode = "candidate_blocked"
    answer, _ = await post(booth, 15)
    assert answer.status == 502 and error_of(answer) == "provider_refused"
    assert "IMAGE_SAFETY" in str(answer.json()["message"])


async def test_429_past_the_deadline_answers_429(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 16)
    fake.default_mode = "rate_limited"
    fake.retry_delay = "47s"
    answer, elapsed = await post(booth, 16)
    assert answer.status == 429 and error_of(answer) == "rate_limited"
    assert len(fake.received) == 1
    # answered at once, not after waiting out the deadline (that would be ~2.75 s): the server's own clock
    assert await server_seconds(booth, answer) < DEADLINE - 1.0
    assert elapsed < DEADLINE, f"the booth waited {elapsed:.2f} s"


async def test_text_only_forever_answers_502_no_image(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 17)
    fake.default_mode = "text_only"
    answer, elapsed = await post(booth, 17)
    assert answer.status == 502 and error_of(answer) == "provider_no_image"
    assert await server_seconds(booth, answer) <= DEADLINE  # the server's own clock
    assert elapsed <= DEADLINE + SLACK


async def test_invalid_key_answers_502_and_shows_on_the_tab(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 18)
    fake.push("invalid_key")
    answer, _ = await post(booth, 18)
    assert answer.status == 502 and error_of(answer) == "provider_auth"
    assert "BOOTHGATE_GEMINI_API_KEY" in str(answer.json()["message"])
    assert KEY not in answer.body.decode()
    assert "BOOTHGATE_GEMINI_API_KEY" in str(await gemini_tab(booth, "last_error"))

    ok, _ = await post(booth, 18)
    assert ok.status == 200
    assert await gemini_tab(booth, "last_error") is None


async def test_billing_answers_502_provider_billing(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 19)
    fake.push("billing")
    answer, _ = await post(booth, 19)
    assert answer.status == 502 and error_of(answer) == "provider_billing"
    await post(booth, 19)  # a success clears the tab's error for the next tests


async def test_unknown_model_answers_502_provider_model(booth: Booth, fake: GeminiFake) -> None:
    await slot(booth, 20, options={"model": "gemini-2.0-flash-exp"})
    answer, _ = await post(booth, 20)
    assert answer.status == 502 and error_of(answer) == "provider_model"
    assert "gemini-2.0-flash-exp" in str(answer.json()["message"])
    assert fake.last.model == "gemini-2.0-flash-exp"
    await slot(booth, 20, options={"model": ""})
    assert (await post(booth, 20))[0].status == 200


async def gemini_tab(booth: Booth, field: str) -> Any:
    async with booth.api() as client:
        providers = (await client.get("/api/providers")).json()
    [gemini] = [p for p in providers if p["name"] == "gemini"]
    return gemini[field]
