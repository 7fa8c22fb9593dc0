"""Issue 24: the background card's live preview, `POST /api/slots/local/{n}/preview`, through the real
server, its image workers and the real offline engine: it follows the card's unsaved sliders, is bounded,
and is the admin's only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from boothgate.local import models
from boothgate.web.app import create_app
from boothgate.web.background_preview_api import PREVIEW_MAX_BYTES
from tests import local_photos as photos
from tests.conftest import ADMIN, Booth, booth_settings
from tests.fakes.server import serve

pytestmark = pytest.mark.skipif(models.problem() is not None, reason=str(models.problem()))

CENTRE = {"backdrop": "green_screen", "subject_position": "center", "subject_scale": 1.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booth]:
    tmp: Path = tmp_path_factory.mktemp("bg-preview")
    settings = booth_settings(tmp)
    app = create_app(settings, {})
    with serve(app) as url:
        booth = Booth(url, settings, app)
        slot = {"enabled": True, "kind": "background", "prompt": ""}
        assert httpx.put(f"{url}/api/slots/local/3", json=slot, auth=ADMIN).status_code == 200
        backdrop = httpx.put(f"{url}/api/slots/local/3/reference/backdrop", json={"name": "bokeh_blue"}, auth=ADMIN)
        assert backdrop.status_code == 200
        yield booth


async def preview(booth: Booth, options: dict[str, Any], photo: bytes | None = None, **kw: Any) -> httpx.Response:
    files = {"photo": ("p.jpg", photo, "image/jpeg")} if photo is not None else None
    async with booth.api() as client:
        return await client.post("/api/slots/local/3/preview", data={"options": json.dumps(options)}, files=files, **kw)


def image(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    return photos.decode(response.content)


def changed(a: np.ndarray, b: np.ndarray) -> float:
    """The share of pixels that differ visibly (by more than 20 in a channel)."""
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > 20).mean())


async def test_the_preview_follows_tolerance_and_placement(server: Booth) -> None:
    base = image(await preview(server, CENTRE))
    assert base.shape[0] * base.shape[1] <= 520_000  # a small copy, not the print
    h, w = base.shape[:2]
    # the slot's background (blue bokeh) is behind the guest, no green of the sample's screen is left
    corner = base[: h // 6, : w // 6].reshape(-1, 3).mean(axis=0)
    assert corner[2] > corner[1] + 20, corner
    looser = image(await preview(server, {**CENTRE, "key_tolerance": 1.0}))
    tighter = image(await preview(server, {**CENTRE, "key_tolerance": 0.0}))
    # the sample's screen is lit unevenly (its shadow, a vignette, folds): the slider visibly changes the
    # result (measured 3.9 % of the picture at 866×577; 0.7 % on the old, evenly lit sample)
    assert changed(looser, tighter) > 0.02
    left = image(await preview(server, {**CENTRE, "subject_position": "left", "subject_scale": 0.6}))
    right = image(await preview(server, {**CENTRE, "subject_position": "right", "subject_scale": 0.6}))
    assert photos.difference(left, right) > 10

    # the guest's colour (the orange suit) moved: more of it on the left half of `left` than of `right`
    def orange(rgb: np.ndarray) -> float:
        r, g, b = (rgb[..., i].astype(int) for i in range(3))
        return float(((r > 150) & (r - b > 80) & (g < 150))[:, : w // 2].mean())

    assert orange(left) > orange(right) + 0.05
    # the same options answer the same picture: the preview is the options', nothing else's
    assert changed(image(await preview(server, CENTRE)), base) == 0.0


def test_the_sample_keys_clean_at_the_default_tolerance_and_not_at_the_tightest() -> None:
    """The packaged sample's screen is uneven enough that the tightest tolerance leaves some of it (the
    guest's shadow), and even enough that the default keys all of it that the loosest one keys."""
    from boothgate.imaging import background_preview
    from boothgate.local import chroma

    rgb = photos.decode(background_preview.sample_photo())
    key = chroma.find_screen(rgb, "green")
    assert key is not None
    loosest = chroma.matte(rgb, key, 1.0)
    screen = cv2.erode((loosest < 0.5).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    left = {t: float((chroma.matte(rgb, key, t)[screen] > 0.05).mean()) for t in (0.0, 0.5)}
    # measured: 5.3 % of the screen left at 0, 0.02 % at the default
    assert left[0.0] > 0.02 and left[0.5] < 0.002, left
    assert len(background_preview.sample_photo()) < 250_000


async def test_an_own_photo_is_used_and_downscaled(server: Booth) -> None:
    shot = cv2.resize(photos.decode((Path(__file__).parents[2] / "src/boothgate/samples/green-screen-portrait.jpg")
                                    .read_bytes()), (1800, 2400))  # fmt: skip
    own = image(await preview(server, CENTRE, photos.jpeg(shot)))
    assert own.shape[0] * own.shape[1] <= 520_000 and own.shape[0] > own.shape[1]


async def test_bounds_and_bad_input(server: Booth) -> None:
    big = await preview(server, CENTRE, b"\xff\xd8\xff" + b"0" * (PREVIEW_MAX_BYTES + 10))
    assert big.status_code == 413
    bad = await preview(server, CENTRE, b"not an image at all")
    assert bad.status_code == 422 and "cannot be used" in bad.json()["detail"]
    truncated = await preview(server, CENTRE, photos.jpeg(photos.astronaut())[:3000])
    assert truncated.status_code == 422
    nobody = await preview(server, {"backdrop": "any_wall"}, photos.jpeg(photos.coffee()))
    assert nobody.status_code == 422 and "person" in nobody.json()["detail"]
    wrong = await preview(server, {"key_tolerance": 7})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["options", "key_tolerance"]
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.post("/api/slots/local/3/preview", data={"options": "{}"})).status_code == 401
    cross = await preview(server, CENTRE, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    async with server.api() as client:
        assert (await client.post("/api/slots/local/99/preview", data={"options": "{}"})).status_code == 404
