"""Several reference images per slot (issue 28), through the whole booth path: the API adds, removes and
reorders them; a photo goes to the real google-genai SDK pointed at the loopback Gemini fake, and the fake's
record shows the photo first and then each reference in order; running jobs hold the files."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from boothgate.web.app import create_app
from tests.conftest import Booth, booth_settings
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, encode, gradient

KEY = "references-test-gemini-key"
# Three references told apart by their shapes (the provider keeps aspect ratios when it prepares them).
REFS = [encode(gradient(w, h, REFERENCE_TINT)) for w, h in ((600, 900), (900, 600), (700, 700))]
SHAPES = [(2, 3), (3, 2), (1, 1)]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_server: tuple[GeminiFake, str]) -> Iterator[Booth]:
    tmp: Path = tmp_path_factory.mktemp("references")
    settings = booth_settings(tmp, deadline_seconds=4.0, gemini_api_key=KEY, gemini_base_url=fake_server[1])
    app = create_app(settings, {})
    with serve(app) as url:
        yield Booth(url, settings, app)


@pytest.fixture
def fake(fake_server: tuple[GeminiFake, str]) -> GeminiFake:
    fake_server[0].reset()
    return fake_server[0]


_seed = iter(range(1, 10_000))


def photo() -> bytes:
    tint = tuple(max(0, c - next(_seed) % 7) for c in PHOTO_TINT)
    return encode(gradient(1200, 900, tint))  # type: ignore[arg-type]


def shape(width: int, height: int) -> tuple[int, int]:
    for w, h in SHAPES:
        if abs(width / height - w / h) < 0.02:
            return (w, h)
    return (width, height)


async def add(client: httpx.AsyncClient, number: int, data: bytes) -> httpx.Response:
    return await client.post(f"/api/slots/gemini/{number}/references", files={"file": ("r.jpg", data, "image/jpeg")})


async def test_three_references_go_after_the_photo_in_order(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 7, kind="prompt", prompt="in the style of image 2, image 3 and image 4")
    async with server.api() as client:
        for data in REFS:
            assert (await add(client, 7, data)).status_code == 200
        slot = (await client.get("/api/slots/gemini/7")).json()
    assert [r["index"] for r in slot["references"]] == [0, 1, 2]
    assert [r["sha256"] for r in slot["references"]] == [hashlib.sha256(d).hexdigest() for d in REFS]
    assert slot["has_reference"] and slot["max_references"] == 13

    answer = await server.post("gemini", 7, photo())
    assert answer.status == 200, answer.body[:300]
    sent = fake.last.images
    assert len(sent) == 4
    assert shape(sent[0].width, sent[0].height) == (4, 3) or sent[0].width * 3 == sent[0].height * 4
    assert [shape(i.width, i.height) for i in sent[1:]] == SHAPES

    # Reordered: the photo still first, then the new order.
    async with server.api() as client:
        moved = await client.put("/api/slots/gemini/7/references/order", json={"order": [2, 0, 1]})
        assert moved.status_code == 200
        assert [r["sha256"] for r in moved.json()["references"]] == [
            hashlib.sha256(REFS[i]).hexdigest() for i in (2, 0, 1)
        ]
        bad = await client.put("/api/slots/gemini/7/references/order", json={"order": [0, 0, 1]})
        assert bad.status_code == 422
    answer = await server.post("gemini", 7, photo())
    assert answer.status == 200
    assert [shape(i.width, i.height) for i in fake.last.images[1:]] == [SHAPES[2], SHAPES[0], SHAPES[1]]

    # The old single-reference route reads and removes "the first"; the list's previews answer.
    async with server.api() as client:
        first = await client.get("/api/slots/gemini/7/reference")
        assert hashlib.sha256(first.content).hexdigest() == hashlib.sha256(REFS[2]).hexdigest()
        assert (await client.get("/api/slots/gemini/7/references/1/thumbnail")).status_code == 200
        removed = await client.delete("/api/slots/gemini/7/references/0")
        assert [r["sha256"] for r in removed.json()["references"]] == [
            hashlib.sha256(REFS[i]).hexdigest() for i in (0, 1)
        ]
        assert (await client.delete("/api/slots/gemini/7/references/5")).status_code == 422
        assert (await client.delete("/api/slots/gemini/7/reference")).status_code == 200
        left = (await client.get("/api/slots/gemini/7")).json()["references"]
    assert [r["sha256"] for r in left] == [hashlib.sha256(REFS[1]).hexdigest()]


async def test_a_provider_taking_one_reference_refuses_a_second(server: Booth) -> None:
    async with server.api() as client:
        assert (
            await client.post("/api/slots/turbotext/3/references", files={"file": ("a.jpg", REFS[0])})
        ).status_code == 200
        full = await client.post("/api/slots/turbotext/3/references", files={"file": ("b.jpg", REFS[1])})
    assert full.status_code == 409 and "remove one" in full.text


async def test_a_running_job_keeps_the_references_it_was_admitted_with(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 8, kind="prompt", prompt="x")
    own_second = encode(gradient(900, 600, tuple(c - 3 for c in REFERENCE_TINT)))  # type: ignore[arg-type]
    async with server.api() as client:
        for data in (REFS[0], own_second):  # the second file is this slot's alone (files are shared by content)
            await add(client, 8, data)
    fake.default_mode = "slow"
    fake.slow_seconds = 1.0

    job = asyncio.create_task(server.post("gemini", 8, photo()))
    for _ in range(100):  # poll until the call is at the fake
        if fake.received:
            break
        await asyncio.sleep(0.05)
    services = server.services
    second = services.media.resolve(services.slots.references(await services.slots.get("gemini", 8))[1]["path"])
    async with server.api() as client:
        await client.delete("/api/slots/gemini/8/references/1")  # removed while the job runs
    assert second.exists()  # held by the running job
    answer = await job
    assert answer.status == 200
    assert [shape(i.width, i.height) for i in fake.last.images[1:]] == SHAPES[:2]
    for _ in range(100):  # released with the job's answer, then deleted (no slot uses it)
        if not second.exists():
            break
        await asyncio.sleep(0.05)
    assert not second.exists()


async def test_a_reference_made_from_a_prompt_is_stored_and_used_by_the_next_photo(
    server: Booth, fake: GeminiFake
) -> None:
    await server.configure("gemini", 9, kind="background", prompt="in front of it")
    async with server.api() as client:
        before = (await client.get("/api/stats")).json()  # the module's server: earlier tests' photos count
        photos_before = before["providers"]["gemini"]["all_time"]["received"]
        spent = before["operator_spend"].get("gemini", {}).get("all_time", {})
        spent_before, paid_before = spent.get("count", 0), spent.get("cost_usd", 0.0)
        price = (await client.get("/api/slots/gemini/9/references/generate")).json()
        assert price["via"] == "gemini" and price["cost_usd"] == pytest.approx(0.0336)  # said before paying
        made = await client.post("/api/slots/gemini/9/references/generate", json={"prompt": "a sunny beach at noon"})
        assert made.status_code == 200, made.text
        draft = made.json()
        assert draft["cost_usd"] == pytest.approx(0.0336)
        # Paid now, kept or not: the statistics count it beside the booth's costs, not as a photo.
        figures = (await client.get("/api/stats")).json()
        assert figures["operator_spend"]["gemini"]["all_time"] == {
            "count": spent_before + 1,
            "cost_usd": pytest.approx(paid_before + 0.0336),
        }
        assert figures["operator_spend"]["gemini"]["today"]["count"] == spent_before + 1
        assert figures["providers"]["gemini"]["all_time"]["received"] == photos_before  # not a photo
        [asked] = fake.received
        assert asked.images == [] and "a sunny beach at noon" in asked.text  # text only: no photo involved
        preview = await client.get(draft["preview_url"])
        assert preview.status_code == 200 and preview.content[:4] == b"\x89PNG"
        # Not stored until confirmed.
        assert (await client.get("/api/slots/gemini/9")).json()["references"] == []
        stored = await client.post(draft["preview_url"])
        assert stored.status_code == 200
        [ref] = stored.json()["references"]
        assert ref["sha256"] == hashlib.sha256(preview.content).hexdigest()
        assert (await client.post(draft["preview_url"])).status_code == 404  # confirmed once
    answer = await server.post("gemini", 9, photo())
    assert answer.status == 200
    sent = fake.last.images
    assert len(sent) == 2 and (sent[1].width, sent[1].height) == (512, 384)  # the generated background
