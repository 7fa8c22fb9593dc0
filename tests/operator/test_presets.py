"""Presets (issue 23) through the real server: a preset imported into an event on other slot numbers
lands on that event's slots (operator/preset_mapping.py), an explicit mapping, the dry run, and the
bounds a hostile file meets — each answered 413/422 with nothing changed on disk or in the slots."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx

from boothgate.providers.local import LocalOptions
from tests import local_photos
from tests.conftest import ADMIN, Booth, make_png
from tests.operator.test_events import _preset_of, create_event, get, scripted
from tests.operator.test_events_export_memory import server_process


def _bomb_png(width: int, height: int) -> bytes:
    """A real PNG of `width`×`height` grey pixels: ~200 KB on disk, width×height bytes when decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(packer.compress(row * 500) for _ in range(height // 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _files(root: Path) -> set[str]:
    """Every media file under the data folder (the database aside): what an import could write."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "boothgate.db" not in p.name}


async def _import(booth: Booth, path: str, body: bytes, **params: str) -> Any:
    async with booth.api() as client:
        return await client.post(
            path, params=params, files={"file": ("preset.json", body, "application/json")}, timeout=60
        )


async def _source_event(booth: Booth) -> tuple[dict[str, Any], bytes]:
    await booth.configure("local", 3, kind="prompt", options={"style": "sepia"}, name="Sepia")
    options = {"mode": "invert"}
    wedding = {"name": "Wedding look", "prompt": "a wedding portrait", "fallback": "local/3"}
    await booth.configure("gemini", 1, kind="prompt", options=options, **wedding)
    await booth.configure("gemini", 2, kind="prompt", name="Party look", prompt="a party portrait", options=options)
    source = await create_event(booth, name="Saturday", slots=["gemini/1", "gemini/2", "local/3"])
    return source, await _preset_of(booth, source["id"])


async def test_preset_into_an_event_on_other_numbers_lands_on_its_slots(booth: Booth) -> None:
    source, preset = await _source_event(booth)
    await scripted(booth, 5, name="Old 5")
    monday = await create_event(booth, name="Monday", slots=["gemini/6", "gemini/5", "local/1"])
    before = await get(booth, "/api/slots")

    preview = await _import(booth, f"/api/events/{monday['id']}/preset", preset, dry_run="true")
    assert preview.status_code == 200, preview.text
    expected = [
        {"from": "gemini/1", "to": "gemini/5"},
        {"from": "gemini/2", "to": "gemini/6"},
        {"from": "local/3", "to": "local/1"},
    ]
    assert preview.json()["mapping"] == expected
    assert {"slot": "gemini/5", "name": "Old 5", "enabled": True} in preview.json()["overwrites"]
    assert await get(booth, "/api/slots") == before  # a dry run changes nothing

    done = await _import(booth, f"/api/events/{monday['id']}/preset", preset)
    assert done.status_code == 200, done.text
    assert done.json()["imported"] == ["gemini/5", "gemini/6", "local/1"] and done.json()["mapping"] == expected
    five, six, one = [await get(booth, f"/api/slots/{k}") for k in ("gemini/5", "gemini/6", "local/1")]
    assert (five["name"], five["prompt"]) == ("Wedding look", "a wedding portrait")
    assert five["fallback"] == "local/1"  # the fallback followed its slot to its new address
    assert (six["name"], one["name"], one["options"]["style"]) == ("Party look", "Sepia", "sepia")
    assert (await get(booth, f"/api/events/{monday['id']}"))["slots"] == ["gemini/6", "gemini/5", "local/1"]
    # the source event's own slots are untouched
    assert (await get(booth, "/api/slots/gemini/1"))["fallback"] == "local/3"
    assert (await get(booth, f"/api/events/{source['id']}"))["slots"] == ["gemini/1", "gemini/2", "local/3"]


async def test_explicit_mapping_and_leftovers(booth: Booth) -> None:
    _, preset = await _source_event(booth)
    tuesday = await create_event(booth, name="Tuesday", slots=["gemini/9"])
    done = await _import(
        booth, f"/api/events/{tuesday['id']}/preset", preset, mapping="gemini/2:gemini/12,local/3:local/7"
    )
    assert done.status_code == 200, done.text
    # the mapping places gemini/2 and local/3; gemini/1 takes the event's free gemini slot
    assert done.json()["mapping"] == [
        {"from": "gemini/1", "to": "gemini/9"},
        {"from": "gemini/2", "to": "gemini/12"},
        {"from": "local/3", "to": "local/7"},
    ]
    assert (await get(booth, "/api/slots/gemini/9"))["fallback"] == "local/7"
    assert (await get(booth, "/api/slots/gemini/12"))["name"] == "Party look"
    assert (await get(booth, f"/api/events/{tuesday['id']}"))["slots"] == ["gemini/9", "gemini/12", "local/7"]


async def test_a_mapping_an_operator_must_fix_changes_nothing(booth: Booth) -> None:
    _, preset = await _source_event(booth)
    wednesday = await create_event(booth, name="Wednesday", slots=["gemini/14"])
    before, files = await get(booth, "/api/slots"), _files(booth.settings.data_dir)
    cases = {
        "gemini/1:local/4": "keeps its tab",
        "gemini/4:gemini/15": "does not contain",
        "gemini/1:gemini/15,gemini/2:gemini/15": "Two slots of the file",
        "gemini/1-gemini/15": "file-slot:target-slot",
        "gemini/1:gemini/99": "not a slot",
        "gemini/1:gemini/15,gemini/1:gemini/16": "twice",
    }
    for mapping, words in cases.items():
        answer = await _import(booth, f"/api/events/{wednesday['id']}/preset", preset, mapping=mapping)
        assert answer.status_code == 422, (mapping, answer.text)
        assert words in answer.json()["detail"][0]["msg"], (mapping, answer.text)
    # without a mapping the left-over gemini/2 keeps its address, which the Saturday event holds
    held = await _import(booth, f"/api/events/{wednesday['id']}/preset", preset)
    assert held.status_code == 409 and "Saturday" in held.text
    assert await get(booth, "/api/slots") == before and _files(booth.settings.data_dir) == files
    assert (await get(booth, f"/api/events/{wednesday['id']}"))["slots"] == ["gemini/14"]


async def test_hostile_preset_files_meet_their_bounds_and_change_nothing(booth: Booth) -> None:
    await scripted(booth, 1, name="Before")
    event = await create_event(booth, slots=["gemini/1"])
    good = json.loads(await _preset_of(booth, event["id"]))
    slot = good["slots"][0]
    before, files = await get(booth, "/api/slots"), _files(booth.settings.data_dir)

    def with_image(field: str, data: bytes) -> bytes:
        import base64
        import hashlib

        image = {"sha256": hashlib.sha256(data).hexdigest(), "data": base64.b64encode(data).decode()}
        return json.dumps({**good, "slots": [{**slot, "name": "Changed", field: image}]}).encode()

    bomb = _bomb_png(15_000, 15_000)  # 225 megapixels (225 MB decoded) in a file of a few hundred KB
    assert len(bomb) < 1_000_000
    too_many = [{**slot, "slot": f"gemini/{n % 20 + 1}", "name": "Changed"} for n in range(201)]
    cases: list[tuple[bytes, str]] = [
        (with_image("reference", bomb), "15000"),  # a decompression bomb as the reference
        (with_image("overlay", bomb), "overlay"),  # ...and as the overlay
        (with_image("overlay", make_png(64, 64, transparent=False)), "transparent"),  # an opaque overlay
        (json.dumps({**good, "slots": too_many}).encode(), "200"),  # more slot entries than allowed
        (b"[" + b"0," * 1_000_001 + b"0]", "entries"),  # a million-item list before validation
        (gzip.compress(json.dumps(good).encode()), "not JSON"),  # compressed: never inflated
        (b"PK\x03\x04" + b"\x00" * 100, "not JSON"),  # a ZIP instead of the JSON file
    ]
    async with booth.api() as client:
        for body, words in cases:
            response = await client.post(
                "/api/presets", files={"file": ("../../../etc/preset.json", body, "application/json")}, timeout=60
            )
            assert response.status_code == 422, (body[:40], response.text[:300])
            assert words in response.text, (words, response.text[:300])
        # a gzip body announced as such is not inflated either: it is bytes that are not JSON
        compressed = gzip.compress(b" " * 50_000_000)  # 50 MB of spaces in ~50 KB
        answer = await client.post(
            "/api/presets", content=compressed, headers={"content-type": "application/json", "content-encoding": "gzip"}
        )
        assert answer.status_code == 422 and "not JSON" in answer.text
        # too large: by its Content-Length, and streamed without one (chunked): 413 with the limit
        over = b" " * (64 * 1024 * 1024 + 1)

        async def chunks() -> Any:
            for start in range(0, len(over), 1 << 20):
                yield over[start : start + (1 << 20)]

        for body_ in (over, chunks()):
            answer = await client.post("/api/presets", content=body_, headers={"content-type": "application/json"})
            assert answer.status_code == 413, answer.text[:200]
            assert "larger than 67,108,864 bytes" in answer.json()["detail"]
        multipart = await client.post("/api/presets", files={"file": ("p.json", over, "application/json")})
        assert multipart.status_code == 413 and "larger than" in multipart.text
    assert await get(booth, "/api/slots") == before
    assert _files(booth.settings.data_dir) == files  # no image stored, nothing written beside the data


async def test_preset_from_one_server_process_into_a_fresh_one(booth: Booth, tmp_path: Path) -> None:
    """Two separate servers: this test's own server exports, a fresh `python -m boothgate serve` process
    with an empty data folder of its own imports into an event on other numbers. The slots come back
    the same, the reference and overlay byte for byte (read back from the fresh server)."""
    reference = local_photos.jpeg(local_photos.astronaut(0.5))
    overlay = make_png(300, 200)
    await booth.configure("local", 3, kind="face_swap", name="Astronaut", fallback="local/4")
    await booth.set_reference("local", 3, reference)
    sepia = {"style": "sepia"}
    await booth.configure(
        "local", 4, kind="prompt", name="Sepia", options=sepia, result_shape="fixed", result_size="1800x1200"
    )
    async with booth.api() as client:
        put = await client.put("/api/slots/local/4/overlay", files={"file": ("o.png", overlay, "image/png")})
        assert put.status_code == 200, put.text
    event = await create_event(booth, slots=["local/3", "local/4"])
    preset = await _preset_of(booth, event["id"])
    exported = {k: await get(booth, f"/api/slots/{k}") for k in ("local/3", "local/4")}

    fresh_dir = tmp_path / "fresh-server"
    with server_process(tmp_path, fresh_dir) as (url, _, _):
        async with httpx.AsyncClient(base_url=url, auth=ADMIN, timeout=60) as client:
            assert not list(fresh_dir.glob("references/**/*.*"))  # a fresh server: nothing of the source
            made = await client.post("/api/events", json={"name": "Elsewhere", "slots": ["local/7", "local/8"]})
            assert made.status_code == 201, made.text
            files = {"file": ("p.json", preset, "application/json")}
            done = await client.post(f"/api/events/{made.json()['id']}/preset", files=files)
            assert done.status_code == 200, done.text
            assert done.json()["imported"] == ["local/7", "local/8"]
            seven, eight = [(await client.get(f"/api/slots/{k}")).json() for k in ("local/7", "local/8")]
            ref_bytes = (await client.get(seven["reference_url"])).content
            overlay_bytes = (await client.get(eight["overlay_url"])).content
    assert ref_bytes == reference and overlay_bytes == overlay
    assert seven["fallback"] == "local/8"  # followed its slot
    same = ("kind", "name", "prompt", "enabled", "result_shape", "result_size", "output_format", "on_failure")
    for old, new in ((exported["local/3"], seven), (exported["local/4"], eight)):
        assert {k: new[k] for k in same} == {k: old[k] for k in same}
        # a slot save fills the options' defaults: the same options as the source's, read as the tab reads them
        assert new["options"] == LocalOptions(**old["options"]).model_dump(mode="json")
