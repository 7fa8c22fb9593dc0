"""The guest's copy (issue 30): a page per photo, the QR on the print, Delete, throttled guessing, galleries.

The server runs on loopback with `BOOTHGATE_PUBLIC_BASE_URL` set to its own address, so the QR in the
booth's answer must decode (zxing-cpp, a real decoder) to exactly the page that answers there.
"""

from __future__ import annotations

import io
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import zxingcpp
from PIL import Image, ImageFilter

from boothgate.sharing.tokens import reach_problem, well_formed
from boothgate.web.app import create_app
from tests.conftest import Booth, ScriptedProvider, booth_settings, make_jpeg
from tests.fakes.server import free_port, serve
from tests.local_photos import astronaut, jpeg


@pytest.fixture
def public_booth(tmp_path: Path) -> Iterator[Any]:
    """A server whose public address is its own loopback address (as a guest's phone would use it)."""
    stack: list[Any] = []

    def start(**overrides: Any) -> Booth:
        port = free_port()
        settings = booth_settings(tmp_path, public_base_url=f"http://127.0.0.1:{port}", **overrides)
        app = create_app(settings, {"gemini": ScriptedProvider})
        context = serve(app, port=port)
        url = context.__enter__()
        stack.append(context)
        return Booth(url, settings, app, calls=ScriptedProvider.calls)

    ScriptedProvider.calls.clear()
    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def guest_photo(width: int = 1800, height: int = 1200) -> bytes:
    """A real person (scikit-image's astronaut) at a booth camera's landscape size."""
    image = Image.fromarray(astronaut()).resize((height, height)).crop((0, 0, height, height))
    canvas = Image.new("RGB", (width, height), (70, 90, 120))
    canvas.paste(image, ((width - height) // 2, 0))
    return jpeg(np.asarray(canvas))


def decode_qr(data: bytes) -> list[str]:
    image = Image.open(io.BytesIO(data)).convert("L")
    return [r.text for r in zxingcpp.read_barcodes(np.asarray(image)) if r.format == zxingcpp.BarcodeFormat.QRCode]


async def test_the_qr_in_the_booths_answer_decodes_to_exactly_its_page(public_booth: Any) -> None:
    booth = public_booth()
    await booth.configure(
        "gemini", 1, prompt="x", share={"qr": True, "corner": "bottom_right", "size": 0.12, "label": "Ваше фото"}
    )
    photo = guest_photo()
    answer = await booth.post("gemini", 1, photo)
    assert answer.status == 200, answer.body[:300]
    share_url = answer.headers["x-share-url"]
    assert share_url.startswith(f"{booth.url}/p/") and well_formed(share_url.rsplit("/", 1)[1])
    # From the JPEG the booth got, at print size (1800×1200 ≈ 15×10 cm at 300 dpi).
    assert decode_qr(answer.body) == [share_url]
    # Seen coarser than printed (half the pixels: 2 px a module), a little blur, JPEG again.
    print_photo = Image.open(io.BytesIO(answer.body)).resize((900, 600), Image.Resampling.BILINEAR)
    print_photo = print_photo.filter(ImageFilter.GaussianBlur(0.6))
    seen = io.BytesIO()
    print_photo.save(seen, "JPEG", quality=70)
    assert decode_qr(seen.getvalue()) == [share_url]
    assert Image.open(io.BytesIO(answer.body)).size == (1800, 1200)
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(share_url, headers={"accept-language": "en-GB,en;q=0.9"})
        assert page.status_code == 200
        assert "Your photo is ready" in page.text and 'name="robots" content="noindex' in page.text
        assert page.headers["x-robots-tag"].startswith("noindex")
        # Nothing of the operator's: no prompt, no admin link, no job id.
        assert "/api/" not in page.text and "/settings" not in page.text and answer.headers["x-job-id"] not in page.text
        ru = await client.get(share_url, headers={"accept-language": "ru-RU,ru;q=0.9,en;q=0.5"})
        assert "Ваше фото готово" in ru.text
        download = await client.get(share_url + "/download")
        assert download.status_code == 200 and download.content == answer.body
        assert "attachment" in download.headers["content-disposition"]
        phone = await client.get(share_url + "/photo")
        assert phone.status_code == 200 and max(Image.open(io.BytesIO(phone.content)).size) <= 1280
    async with booth.api() as api:
        job = (await api.get(f"/api/jobs/{answer.headers['x-job-id']}")).json()
        listed = (await api.get("/api/jobs")).json()
    assert job["share_url"] == share_url and listed[0]["share_url"] == share_url and job["late"] is None


async def test_no_qr_when_off_and_the_token_is_random(public_booth: Any) -> None:
    booth = public_booth()
    await booth.configure("gemini", 1, prompt="x")
    first = await booth.post("gemini", 1, make_jpeg(900, 600, seed=1))
    second = await booth.post("gemini", 1, make_jpeg(900, 600, seed=2))
    assert decode_qr(first.body) == []
    a, b = (x.headers["x-share-url"].rsplit("/", 1)[1] for x in (first, second))
    assert a != b and first.headers["x-job-id"] not in a and len(a) == 32  # 192 random bits


async def test_delete_my_photo_removes_every_file_and_keeps_the_count(public_booth: Any) -> None:
    booth = public_booth()
    await booth.configure("gemini", 1, prompt="x", share={"qr": True})
    answer = await booth.post("gemini", 1, make_jpeg(1200, 800))
    share_url = answer.headers["x-share-url"]
    job_id = answer.headers["x-job-id"]
    data_dir = booth.settings.data_dir
    files = [p for p in data_dir.rglob("*") if p.is_file() and job_id in p.name]
    assert len(files) >= 2  # the photo and the result
    async with httpx.AsyncClient(timeout=30) as client:
        confirm = await client.get(share_url + "?confirm=delete", headers={"accept-language": "en"})
        assert "Yes, delete it for good" in confirm.text
        deleted = await client.post(share_url + "/delete", headers={"origin": booth.url})
        assert deleted.status_code == 303
        gone = await client.get(share_url, headers={"accept-language": "en"})
        assert gone.status_code == 410 and "Photo deleted" in gone.text
        assert (await client.get(share_url + "/download")).status_code == 410
    assert [p for p in data_dir.rglob("*") if p.is_file() and job_id in p.name] == []
    async with booth.api() as api:
        job = (await api.get(f"/api/jobs/{job_id}")).json()
        stats = (await api.get("/api/stats")).json()
    assert job["deleted_by_guest"] is True and job["status"] == "succeeded"
    assert job["photo_url"] is None and job["result_url"] is None
    assert [h["event"] for h in job["history"]] == ["deleted_by_guest"]
    assert stats  # the statistics still answer; the row is kept (status succeeded above)


async def test_ten_thousand_random_tokens_find_nothing_and_get_throttled(public_booth: Any) -> None:
    booth = public_booth()
    await booth.configure("gemini", 1, prompt="x")
    real = (await booth.post("gemini", 1, make_jpeg(600, 400))).headers["x-share-url"]
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=booth.url, timeout=30) as client:
        for _ in range(10_000):
            response = await client.get(f"/p/{secrets.token_urlsafe(24)}")
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        # Locked out: even the real page answers 429 to this address now.
        locked = await client.get(real.replace(booth.url, ""))
    assert set(statuses) == {404, 429}  # not one 200: nothing found
    assert statuses[404] <= 30 and statuses[429] >= 9_970
    assert locked.status_code == 429 and "retry-after" in locked.headers


async def test_unknown_and_malformed_tokens_are_plain_404s(public_booth: Any) -> None:
    booth = public_booth()
    async with httpx.AsyncClient(base_url=booth.url, timeout=30) as client:
        for path in ("/p/nope", "/p/" + "A" * 32, "/g/" + "B" * 32, "/g/x/zip"):
            response = await client.get(path, headers={"accept-language": "en"})
            assert response.status_code == 404, path
            assert "Page not found" in response.text


async def test_sharing_off_answers_404_and_sends_no_share_url(public_booth: Any) -> None:
    booth = public_booth(sharing_enabled=False)
    await booth.configure("gemini", 1, prompt="x", share={"qr": True})
    answer = await booth.post("gemini", 1, make_jpeg(900, 600))
    assert answer.status == 200 and "x-share-url" not in answer.headers and decode_qr(answer.body) == []


async def test_slot_share_field_is_validated(public_booth: Any) -> None:
    booth = public_booth()
    async with booth.api() as api:
        bad = await api.put("/api/slots/gemini/1", json={"share": {"qr": True, "size": 5}})
        assert bad.status_code == 422
        bad = await api.put("/api/slots/gemini/1", json={"late_result_seconds": 601})
        assert bad.status_code == 422
        good = await api.put(
            "/api/slots/gemini/1", json={"share": {"qr": True, "corner": "top_left"}, "late_result_seconds": 120}
        )
        assert good.status_code == 200
        body = good.json()
    assert body["share"] == {"qr": True, "corner": "top_left", "size": 0.12, "label": ""}
    assert body["late_result_seconds"] == 120


def test_reach_problem_names_addresses_a_phone_cannot_open() -> None:
    assert reach_problem("") == "unset"
    assert reach_problem("http://localhost:8000") == "localhost"
    assert reach_problem("http://127.0.0.1:8000") == "localhost"
    assert reach_problem("http://192.168.1.20:8000") == "lan"
    assert reach_problem("http://boothpc.local") == "lan"
    assert reach_problem("https://booth.example.com") is None


async def test_gallery_with_pin_hide_zip_and_slideshow(public_booth: Any) -> None:
    booth = public_booth()
    await booth.configure("gemini", 1, prompt="x")
    answers = [await booth.post("gemini", 1, make_jpeg(900, 600, seed=s)) for s in range(3)]
    async with booth.api() as api:
        created = await api.post("/api/galleries", json={"name": "Свадьба", "slots": ["gemini/1"], "pin": "4321"})
        assert created.status_code == 201, created.text
        gallery = created.json()
        assert (await api.post("/api/galleries", json={"slots": ["x"]})).status_code == 422
        hidden = await api.put(f"/api/jobs/{answers[0].headers['x-job-id']}/gallery_hidden", json={"hidden": True})
        assert hidden.status_code == 200
    url = gallery["url"]
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as client:
        locked = await client.get(url, headers={"accept-language": "en"})
        assert "Gallery PIN" in locked.text and "/i/" not in locked.text
        assert (await client.get(url + "/zip")).status_code == 303
        wrong = await client.post(url + "/pin", data={"pin": "0000"}, headers={"origin": booth.url})
        assert wrong.headers["location"].endswith("?pin=wrong")
        right = await client.post(url + "/pin", data={"pin": "4321"}, headers={"origin": booth.url})
        assert right.status_code == 303
        page = await client.get(url)
        ids = [a.headers["x-job-id"] for a in answers]
        assert ids[0] not in page.text and ids[1] in page.text and ids[2] in page.text
        assert page.text.index(ids[2]) < page.text.index(ids[1])  # newest first
        archive = await client.get(url + "/zip")
        assert archive.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
        assert len(names) == 2
        show = await client.get(url + "/show")
        assert show.status_code == 200 and "data:image/svg+xml" in show.text
        feed = (await client.get(url + "/feed.json")).json()
        assert [p["id"] for p in feed["photos"]] == [ids[2], ids[1]]


def test_zip_stream_holds_one_chunk_at_a_time(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from boothgate.sharing.galleries import ZIP_CHUNK, GalleryPhoto, zip_stream

    photos = []
    for n in range(3):
        path = tmp_path / f"{n}.jpg"
        path.write_bytes(secrets.token_bytes(3 * ZIP_CHUNK + 17))
        photos.append(GalleryPhoto(str(n), datetime.now(UTC), path, "image/jpeg"))
    pieces = list(zip_stream(photos))
    assert max(len(p) for p in pieces) <= ZIP_CHUNK + 4096  # bounded memory: one chunk plus headers
    archive = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    assert [archive.read(n) for n in archive.namelist()] == [p.path.read_bytes() for p in photos]


@pytest.mark.parametrize("corner", ["bottom_right", "bottom_left", "top_right", "top_left"])
def test_the_code_sits_in_its_corner_with_a_white_quiet_zone(corner: str) -> None:
    from boothgate.imaging.qrmark import QUIET_MODULES, QrMark, lay_qr

    base = Image.new("RGB", (1800, 1200), (20, 20, 20))
    marked = lay_qr(base, QrMark("https://booth.example.com/p/" + "x" * 32, corner, 0.12, "Ваше фото"))
    gray = np.asarray(marked.convert("L"))
    white = np.argwhere(gray > 240)
    top, left = white.min(axis=0)
    bottom, right = white.max(axis=0)
    assert (top < 600) == corner.startswith("top") and (left < 900) == corner.endswith("left")
    assert right - left + 1 >= 0.12 * 1200 - 4  # at least the asked size
    # The quiet zone: the panel's outer 4 modules (4 px each) are white all round.
    module = 4
    assert (gray[top : top + QUIET_MODULES * module, left : right + 1] > 240).all()
    code = np.asarray(marked.convert("L"))[top : bottom + 1, left : right + 1]
    texts = [r.text for r in zxingcpp.read_barcodes(code)]
    assert texts == ["https://booth.example.com/p/" + "x" * 32]


def test_a_print_too_small_for_a_readable_code_gets_none() -> None:
    from boothgate.imaging.qrmark import QrMark, lay_qr

    tiny = Image.new("RGB", (120, 90), (20, 20, 20))
    assert lay_qr(tiny, QrMark("https://booth.example.com/p/" + "x" * 32)).tobytes() == tiny.tobytes()
