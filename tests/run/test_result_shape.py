"""Results shaped for the booth's print layout, overlays, and what failures keep (issue 13).

The Gemini fake answers like the real service does: a square 1024×1024 image whatever the photo's
shape. The booth must still get its photo's shape back.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boothgate.web.app import create_app
from tests.conftest import Booth, booth_settings, make_jpeg, make_png, open_image, photo_array
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve

KEY = "shape-test-gemini-key"
RED = (230, 20, 20)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(fake_server: tuple[GeminiFake, str]) -> GeminiFake:
    fake_server[0].reset()
    fake_server[0].answer_size = (1024, 1024)
    return fake_server[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_server: tuple[GeminiFake, str]) -> Iterator[Booth]:
    tmp: Path = tmp_path_factory.mktemp("shape")
    settings = booth_settings(tmp, deadline_seconds=20.0, gemini_api_key=KEY, gemini_base_url=fake_server[1])
    app = create_app(settings, {})
    with serve(app) as url:
        yield Booth(url, settings, app)


@pytest.fixture(scope="module")
def big_photo() -> bytes:
    """6000×4000 (3:2), as a DSLR sends it: a photo-like image scaled up (cheap to make)."""
    image = Image.fromarray(photo_array(600, 400, seed=3)).resize((6000, 4000), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def overlay_png(width: int = 600, height: int = 400) -> bytes:
    """Transparent, with an opaque red block at 10–25 % across and 60–90 % down (a logo corner)."""
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[int(height * 0.6) : int(height * 0.9), int(width * 0.1) : int(width * 0.25)] = (*RED, 255)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return buf.getvalue()


async def test_a_square_answer_comes_back_in_the_photos_shape_capped_to_3000(
    server: Booth, fake: GeminiFake, big_photo: bytes
) -> None:
    await server.configure("gemini", 1, prompt="x")
    answer = await server.post("gemini", 1, big_photo)
    assert answer.status == 200, answer.body[:300]
    assert open_image(answer.body).size == (3000, 2000)
    # the provider was asked for the photo's shape first (Gemini's nearest aspectRatio)
    assert fake.last.image_config.get("aspectRatio") == "3:2"


async def test_fixed_size(server: Booth, fake: GeminiFake, big_photo: bytes) -> None:
    await server.configure("gemini", 2, prompt="x", result_shape="fixed", result_size="1800x1200")
    answer = await server.post("gemini", 2, big_photo)
    assert answer.status == 200
    assert open_image(answer.body).size == (1800, 1200)


async def test_as_returned_keeps_the_providers_image(server: Booth, fake: GeminiFake, big_photo: bytes) -> None:
    await server.configure("gemini", 3, prompt="x", result_shape="as_returned")
    answer = await server.post("gemini", 3, big_photo)
    assert answer.status == 200
    assert open_image(answer.body).size == (1024, 1024)


async def test_portrait_photo_after_exif_orientation(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 4, prompt="x")
    photo = make_jpeg(1200, 800, seed=4, exif_orientation=6)  # stored landscape, seen portrait
    answer = await server.post("gemini", 4, photo)
    assert answer.status == 200
    assert open_image(answer.body).size == (800, 1200), "a small photo: its own size, upright"
    assert fake.last.image_config.get("aspectRatio") == "2:3"


async def test_fixed_shape_asks_gemini_for_the_fixed_ratio(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 5, prompt="x", result_shape="fixed", result_size="1200x1800")
    answer = await server.post("gemini", 5, make_jpeg(1200, 800, seed=5))
    assert answer.status == 200
    assert open_image(answer.body).size == (1200, 1800)
    assert fake.last.image_config.get("aspectRatio") == "2:3"


@pytest.mark.parametrize("size", ["1800", "18x12", "0x0", "99999x2", "big"])
async def test_a_bad_size_is_refused_on_save(server: Booth, size: str) -> None:
    async with server.api() as client:
        response = await client.put("/api/slots/gemini/6", json={"result_shape": "fixed", "result_size": size})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["result_size"]


async def test_fixed_without_a_size_is_refused_and_a_size_is_normalised(server: Booth) -> None:
    async with server.api() as client:
        missing = await client.put("/api/slots/gemini/7", json={"result_shape": "fixed", "result_size": ""})
        good = await client.put("/api/slots/gemini/7", json={"result_shape": "fixed", "result_size": " 1800 X 1200 "})
    assert missing.status_code == 422
    assert good.status_code == 200
    assert good.json()["result_size"] == "1800x1200"


async def test_overlay_is_laid_at_the_same_relative_place(server: Booth, fake: GeminiFake, big_photo: bytes) -> None:
    await server.configure("gemini", 8, prompt="x")
    async with server.api() as client:
        put = await client.put("/api/slots/gemini/8/overlay", files={"file": ("frame.png", overlay_png(), "image/png")})
        assert put.status_code == 200, put.text
        assert put.json()["has_overlay"] is True
        preview = await client.get(put.json()["overlay_url"])
        assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    await server.configure("gemini", 13, prompt="x")  # the same slot without an overlay: the baseline
    answer = await server.post("gemini", 8, big_photo)
    plain = await server.post("gemini", 13, big_photo)
    assert answer.status == plain.status == 200
    result = np.asarray(open_image(answer.body).convert("RGB"), dtype=np.int16)
    baseline = np.asarray(open_image(plain.body).convert("RGB"), dtype=np.int16)
    height, width, _ = result.shape
    assert (width, height) == (3000, 2000)
    block = result[int(height * 0.62) : int(height * 0.88), int(width * 0.11) : int(width * 0.24)]
    assert np.abs(block - np.array(RED)).max() <= 30, "the overlay's opaque block is where it was drawn"
    outside = np.ones((height, width), dtype=bool)
    outside[int(height * 0.58) : int(height * 0.92), int(width * 0.08) : int(width * 0.27)] = False
    difference = np.abs(result - baseline)[outside]
    assert difference.mean() < 3, "elsewhere the overlay is transparent: the result shows through"


async def test_overlay_refuses_what_is_not_a_transparent_png(server: Booth) -> None:
    opaque = io.BytesIO()
    Image.new("RGBA", (50, 50), (1, 2, 3, 255)).save(opaque, "PNG")
    async with server.api() as client:
        jpeg = await client.put("/api/slots/gemini/9/overlay", files={"file": ("f.jpg", make_jpeg(), "image/jpeg")})
        flat = await client.put(
            "/api/slots/gemini/9/overlay", files={"file": ("f.png", opaque.getvalue(), "image/png")}
        )
        broken = await client.put(
            "/api/slots/gemini/9/overlay", files={"file": ("f.png", overlay_png()[:200], "image/png")}
        )
        slot = (await client.get("/api/slots/gemini/9")).json()
    assert jpeg.status_code == 415 and "PNG" in jpeg.json()["detail"]
    assert flat.status_code == 422 and "transparen" in flat.json()["detail"]
    assert broken.status_code == 422
    assert slot["has_overlay"] is False


async def test_overlay_can_be_removed(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 10, prompt="x", result_shape="as_returned")
    async with server.api() as client:
        put = await client.put("/api/slots/gemini/10/overlay", files={"file": ("o.png", overlay_png(), "image/png")})
        stored = server.settings.data_dir / "overlays" / "gemini"
        assert len(list(stored.glob("10-*.png"))) == 1, "kept by content, in a folder of its own"
        removed = await client.delete("/api/slots/gemini/10/overlay")
    assert put.status_code == 200 and removed.status_code == 200
    assert removed.json()["has_overlay"] is False and removed.json()["overlay_url"] is None
    assert list(stored.glob("10-*")) == []
    answer = await server.post("gemini", 10, make_jpeg(600, 400, seed=10))
    assert open_image(answer.body).size == (1024, 1024)


async def test_on_failure_original_answers_the_photo_byte_for_byte(
    server: Booth, fake: GeminiFake, big_photo: bytes
) -> None:
    await server.configure("gemini", 11, prompt="x", on_failure="original")
    async with server.api() as client:
        put = await client.put("/api/slots/gemini/11/overlay", files={"file": ("o.png", overlay_png(), "image/png")})
        assert put.status_code == 200
    fake.push("prompt_blocked")
    answer = await server.post("gemini", 11, big_photo)
    assert answer.status == 200
    assert answer.headers.get("x-boothgate-fallback")
    assert answer.body == big_photo


async def test_trash_keeps_the_type_by_content(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 12, prompt="x", enabled=False)
    before = set(server.trash_files())
    jpeg = await server.post("gemini", 12, make_jpeg(seed=12), filename="photo.bin")
    png = await server.post("gemini", 12, make_png(seed=12), content_type="image/png", filename="x.jpg")
    text = await server.post("gemini", 12, b"not an image at all", filename="IMG.JPG")
    assert (jpeg.status, png.status, text.status) == (403, 403, 403)
    kept = {p.name.split(".", 1)[0]: p.suffix for p in set(server.trash_files()) - before if p.suffix != ".json"}
    assert kept == {
        jpeg.headers["x-job-id"]: ".jpg",
        png.headers["x-job-id"]: ".png",
        text.headers["x-job-id"]: ".bin",
    }
