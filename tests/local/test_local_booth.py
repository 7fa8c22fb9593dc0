"""The offline tab through the whole booth path: `POST /booth/local/N` on a real socket, the spine, the
image workers, the real mediapipe/OpenCV engine, and back — on real photos of people.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from boothgate.cli.booth_client import BoothAnswer
from boothgate.imaging.images import target_size
from boothgate.local import faces, models
from tests import local_photos as photos
from tests.conftest import Booth, Tab

pytestmark = pytest.mark.skipif(models.problem() is not None, reason=str(models.problem()))

# Generous: the engine is fast, but this machine is shared; the deadline is not what these tests check.
DEADLINE = 40.0


TAB = "local"  # the module's server, the real offline tab: `tab_rig` in tests/conftest.py
TAB_SETTINGS = {"deadline_seconds": DEADLINE, "local_output_long_side_pixels": 1200}


@pytest.fixture
def server(tab_rig: Tab) -> Booth:
    return tab_rig.booth


async def slot(booth: Booth, number: int, kind: str, reference: np.ndarray | None = None, **fields: Any) -> None:
    fields.setdefault("prompt", "")
    # The engine's own output is what these tests measure; result shaping has tests of its own.
    fields.setdefault("result_shape", "as_returned")
    await booth.configure("local", number, kind=kind, **fields)
    if reference is not None:
        await booth.set_reference("local", number, photos.jpeg(reference))


async def post(booth: Booth, number: int, photo: np.ndarray) -> BoothAnswer:
    return await booth.post("local", number, photos.jpeg(photo))


def prepared_size(booth: Booth, photo: np.ndarray) -> tuple[int, int]:
    """(height, width) the offline tab works at for this photo: prepared to its input pixels."""
    provider = booth.services.registry.get("local")
    width, height = target_size(photo.shape[1], photo.shape[0], provider.input_pixels())
    assert max(width, height) <= booth.settings.local_output_long_side_pixels
    return height, width


def ok_image(answer: BoothAnswer) -> np.ndarray:
    assert answer.status == 200, answer.body[:300]
    assert answer.content_type == "image/jpeg"
    return photos.decode(answer.body)


async def test_background_slot_keeps_the_person_and_puts_in_the_reference(server: Booth) -> None:
    reference = cv2.resize(photos.coffee(), (1024, 1024))
    await slot(server, 1, "background", reference)
    photo = photos.astronaut(2.0)
    result = ok_image(await post(server, 1, photo))
    height, width = prepared_size(server, photo)
    assert result.shape == (height, width, 3) and width < 1024  # prepared at the tab's input size
    photo, reference = (cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in (photo, reference))
    (face,) = faces.find_faces(photo)
    assert photos.difference(photos.region(result, face), photos.region(photo, face)) < 10
    for corner in [(0, 0, 110, 110), (width - 110, 0, 110, 110)]:
        assert photos.difference(photos.region(result, corner), photos.region(reference, corner)) < 15


async def test_background_slot_keeps_both_people_of_a_group(server: Booth) -> None:
    canvas, _ = photos.two_people()
    reference = cv2.resize(photos.coffee(), (1200, 600))
    await slot(server, 2, "background", reference)
    result = ok_image(await post(server, 2, canvas))
    assert result.shape[:2] == prepared_size(server, canvas) == canvas.shape[:2]  # 720 000 px: not downscaled
    boxes = faces.find_faces(canvas)
    assert len(boxes) == 2
    for x, y, w, h in boxes:
        # the face's box without its corners: those hold the studio backdrop beside the hair, which goes
        face = (x + w // 8, y + h // 8, w - w // 4, h - h // 4)
        assert photos.difference(photos.region(result, face), photos.region(canvas, face)) < 12
    gap = (530, 0, 90, 80)
    assert photos.difference(photos.region(result, gap), photos.region(reference, gap)) < 15


async def test_a_background_slot_without_reference_is_refused(server: Booth) -> None:
    await slot(server, 3, "background")
    answer = await post(server, 3, photos.astronaut())
    assert answer.status == 503 and answer.json()["error"] == "slot_incomplete"


@pytest.mark.parametrize(
    ("number", "style"), [(4, "warm_film"), (5, "teal_orange"), (6, "faded"), (7, "noir"), (8, "sepia"),
                          (9, "hdr"), (10, "comic")]
)  # fmt: skip
async def test_style_slot_answers_the_restyled_photo_at_the_output_size(server: Booth, number: int, style: str) -> None:
    await slot(server, number, "prompt", options={"style": style})
    photo = photos.grace_hopper(3.0)  # 1536×1800: more pixels than this server's offline tab works at
    answer = await post(server, number, photo)
    result = ok_image(answer)
    most_height, most_width = prepared_size(server, photo)
    height, width = result.shape[:2]
    # at most the tab's input size; a JPEG decoded at a DCT scale may stop a little short of it (no resize)
    assert abs(width / height - most_width / most_height) < 0.01
    assert 0.6 * most_width * most_height <= width * height <= most_width * most_height
    assert photos.difference(result, cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)) > 3
    notes = (await server.job(answer))["provider_notes"]
    assert notes["style"] == style and notes["result_size"] == f"{width}x{height}" and notes["cost_usd"] == 0.0


async def test_an_unknown_style_is_refused_when_saving(server: Booth) -> None:
    async with server.api() as client:
        response = await client.put("/api/slots/local/11", json={"kind": "prompt", "options": {"style": "anime"}})
    assert response.status_code == 422, response.text  # the API's field errors
    assert "style" in response.text


async def test_face_swap_slot_answers_the_template_with_the_guests_face(server: Booth) -> None:
    template = photos.astronaut(2.0)
    await slot(server, 12, "face_swap", template)
    guest = photos.grace_hopper(2.0)
    answer = await post(server, 12, guest)
    result = ok_image(answer)
    height, width = prepared_size(server, template)  # the result is the template's scene
    assert result.shape == (height, width, 3)
    template = cv2.resize(template, (width, height), interpolation=cv2.INTER_AREA)
    (box,) = faces.find_faces(template)
    assert photos.difference(photos.region(result, box), photos.region(template, box)) > 8  # the face changed
    assert photos.difference(result[650:, :300], template[650:, :300]) < 3  # the scene did not
    job = await server.job(answer)
    assert job["provider_notes"]["engine"] == "local" and job["provider_notes"]["template_faces"] == 1


@pytest.mark.parametrize(
    ("photo", "code"),
    [
        (photos.coffee(2.0), "no_face"),
        (photos.astronaut(), "face_too_small"),
        (np.ascontiguousarray(photos.grace_hopper(2.0)[300:, :]), "face_at_edge"),  # forehead cut off
    ],
    ids=["no_face", "too_small", "at_edge"],
)
async def test_face_swap_answers_422_with_a_plain_reason(server: Booth, photo: np.ndarray, code: str) -> None:
    await slot(server, 13, "face_swap", photos.astronaut(2.0))
    answer = await post(server, 13, photo)
    assert answer.status == 422
    body = answer.json()
    assert body["error"] == code and "face" in str(body["message"])
    job = await server.job(answer)
    assert job["status"] == "rejected" and job["error"] == code and job["http_status"] == 422
    assert job["in_trash"], "the original is kept in trash"


async def test_health_and_the_tab_say_the_engine_is_ready(server: Booth) -> None:
    async with server.api() as client:
        health = (await client.get("/health")).json()
        page_ru = (await client.get("/tabs/local?lang=ru")).text + (await client.get("/tabs/local/1?lang=ru")).text
        page_en = (await client.get("/tabs/local?lang=en")).text + (await client.get("/tabs/local/1?lang=en")).text
        providers = (await client.get("/api/providers")).json()
    assert health["providers"]["local"]["configured"] is True and health["providers"]["local"]["problem"] is None
    # the tab's name, and the face swap labelled experimental on its card (the style slots pick from previews)
    assert "Без интернета" in page_ru and "экспериментальная" in page_ru and "для забавы" in page_ru
    assert "Offline" in page_en and "experimental, novelty quality" in page_en
    [local] = [p for p in providers if p["name"] == "local"]
    assert local["configured"] and "mediapipe" in local["engine"]


async def test_without_the_engine_the_tab_says_why_and_other_tabs_work(
    booth_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    booth: Booth = booth_factory()
    monkeypatch.setattr(models, "SUPPORTED_PYTHONS", ((3, 99),))
    async with booth.api() as client:
        health = (await client.get("/health")).json()
        page = (await client.get("/tabs/local?lang=en")).text
    assert health["providers"]["local"]["configured"] is False
    assert "Python 3.11 or 3.12" in health["providers"]["local"]["problem"]
    assert "Python 3.11 or 3.12" in page
    await booth.configure("local", 1, kind="prompt", prompt="", options={"style": "noir"})
    answer = await booth.post("local", 1, photos.jpeg(photos.astronaut()))
    assert answer.status == 503 and "Python 3.11 or 3.12" in str(answer.json()["message"])
    await booth.configure("gemini", 1, kind="prompt", prompt="pirates")
    assert (await booth.post("gemini", 1, photos.jpeg(photos.astronaut()))).status == 200
