"""Events (issue 23) through the real server on loopback: the API, statistics per event, the budget
(reserved at admission, settled with the provider's figure), the streamed export, presets, clean-up."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from boothgate.operator import event_cleanup
from boothgate.providers.local import LocalOptions
from tests import local_photos
from tests.conftest import Booth, make_jpeg, make_png

_seed = iter(range(500, 100_000))


def job_id(answer: Any) -> str:
    return str(answer.headers.get("x-job-id") or answer.json()["job_id"])


def photo() -> bytes:
    return make_jpeg(480, 360, seed=next(_seed))


async def create_event(booth: Booth, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "Smith wedding")
    async with booth.api() as client:
        response = await client.post("/api/events", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def get(booth: Booth, path: str) -> Any:
    async with booth.api() as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def wait_settled(booth: Booth, event_id: int) -> dict[str, Any]:
    """Settlement runs after the answer (the booth never waits for it): poll until nothing is in flight."""
    for _ in range(200):
        event = await get(booth, f"/api/events/{event_id}")
        if event["budget"]["in_flight"] == 0:
            return dict(event)
        await asyncio.sleep(0.05)
    raise AssertionError("reservations never settled")


async def scripted(booth: Booth, number: int, **fields: Any) -> None:
    options = {"mode": "invert", "delay_seconds": fields.pop("delay", 0.0)}
    await booth.configure("gemini", number, kind="prompt", prompt="a portrait", options=options, **fields)


# --- the API ---------------------------------------------------------------------------------------
async def test_create_edit_end_delete_and_validation(booth: Booth) -> None:
    event = await create_event(booth, slots=["gemini/1", "local/2"], retention_days=7)
    assert event["state"] == "running" and event["slots"] == ["gemini/1", "local/2"]
    assert len(base64.urlsafe_b64decode(event["gallery_token"] + "==")) * 8 >= 128
    assert event["gallery_url"].endswith("/g/" + event["gallery_token"])
    async with booth.api() as client:
        # a slot is in at most one event at a time
        taken = await client.post("/api/events", json={"name": "Party", "slots": ["gemini/1"]})
        assert taken.status_code == 409 and "Smith wedding" in taken.text
        # ...but a later event that does not overlap may use it
        later = datetime.now(UTC) + timedelta(days=3)
        ok = await client.post(
            "/api/events",
            json={"name": "Monday", "slots": ["gemini/1"], "starts_at": later.isoformat()},
        )
        assert ok.status_code == 409  # the first event has no end yet: it overlaps everything after it
        end = await client.post(f"/api/events/{event['id']}/end")
        assert end.status_code == 200 and end.json()["state"] == "ended"
        assert end.json()["clean_up_at"] is not None
        ok = await client.post(
            "/api/events",
            json={"name": "Monday", "slots": ["gemini/1"], "starts_at": later.isoformat()},
        )
        assert ok.status_code == 201 and ok.json()["state"] == "upcoming"
        for bad in (
            {"name": ""},
            {"name": "x", "slots": ["nowhere/1"]},
            {"name": "x", "slots": ["gemini/99"]},
            {"name": "x", "budget": {"max_paid_calls": -1}},
            {"name": "x", "unknown": 1},
            {"name": "x", "starts_at": "2026-12-02T10:00:00Z", "ends_at": "2026-12-02T09:00:00Z"},
        ):
            response = await client.post("/api/events", json=bad)
            assert response.status_code == 422, (bad, response.text)
        moscow = timezone(timedelta(hours=3))
        for offset, state in ((-1, "running"), (1, "upcoming")):  # times with an offset mean that instant
            starts = (datetime.now(UTC) + timedelta(hours=offset)).astimezone(moscow)
            zoned = await client.post("/api/events", json={"name": f"zoned {offset}", "starts_at": starts.isoformat()})
            assert zoned.status_code == 201 and zoned.json()["state"] == state, zoned.text
            assert datetime.fromisoformat(zoned.json()["starts_at"]) == starts
            assert (await client.delete(f"/api/events/{zoned.json()['id']}")).status_code == 200
        changed = await client.put(f"/api/events/{ok.json()['id']}", json={"name": "Monday party"})
        assert changed.json()["name"] == "Monday party" and changed.json()["slots"] == ["gemini/1"]
        assert (await client.delete(f"/api/events/{ok.json()['id']}")).status_code == 200
        assert (await client.put(f"/api/events/{ok.json()['id']}", json={"name": "y"})).status_code == 404
        listed = (await client.get("/api/events")).json()
    assert [e["name"] for e in listed] == ["Smith wedding"]


async def test_two_events_at_once_count_only_their_own_jobs(booth: Booth) -> None:
    await scripted(booth, 1)
    await scripted(booth, 2)
    await scripted(booth, 3)
    smith = await create_event(booth, name="Smith wedding", slots=["gemini/1"])
    acme = await create_event(booth, name="Acme party", slots=["gemini/2"])
    answers = await asyncio.gather(
        booth.post("gemini", 1, photo()),
        booth.post("gemini", 1, photo()),
        booth.post("gemini", 2, photo()),
        booth.post("gemini", 3, photo()),  # in no event: works as before
        booth.post("gemini", 1, b"not an image"),  # a failure counts to its event too
    )
    assert [a.status for a in answers] == [200, 200, 200, 200, 415]
    first = await get(booth, f"/api/events/{smith['id']}/stats")
    second = await get(booth, f"/api/events/{acme['id']}/stats")
    assert (first["received"], first["succeeded"], first["failed"]) == (3, 2, 1)
    assert first["failed_by_reason"] == {"unsupported_image": 1}
    assert (second["received"], second["succeeded"], second["failed"]) == (1, 1, 0)
    assert [s["slot"] for s in first["by_slot"]] == ["gemini/1"]
    assert [s["slot"] for s in second["by_slot"]] == ["gemini/2"]
    assert first["paid_calls"] == 2 and second["paid_calls"] == 1
    assert sum(h["count"] for h in first["photos_per_hour"]) == 3
    assert first["p50_seconds"] is not None and first["p95_seconds"] is not None
    jobs = await get(booth, "/api/jobs?limit=10")
    by_slot = {(j["slot"], j["event_id"]) for j in jobs}
    assert by_slot == {(1, smith["id"]), (2, acme["id"]), (3, None)}
    live = await get(booth, f"/api/live?event={acme['id']}")
    assert live["counts"]["received"] == 1 and {e["name"] for e in live["events"]} == {"Smith wedding", "Acme party"}


# --- the budget ------------------------------------------------------------------------------------
async def test_budget_of_three_calls_fourth_photo_served_by_local_fallback(booth: Booth) -> None:
    await booth.configure("local", 1, kind="prompt", options={"style": "noir"})
    await scripted(booth, 1, fallback="local/1")
    await scripted(booth, 2)
    capped = await create_event(booth, name="Capped", slots=["gemini/1", "local/1"], budget={"max_paid_calls": 3})
    await create_event(booth, name="Other", slots=["gemini/2"])
    for expected_calls in (1, 2, 3):
        answer = await booth.post("gemini", 1, photo())
        assert answer.status == 200
        await wait_settled(booth, capped["id"])
        assert len([c for c in booth.calls]) == expected_calls
    fourth = await booth.post("gemini", 1, photo())
    assert fourth.status == 200 and fourth.content_type == "image/jpeg"
    job = await get(booth, f"/api/jobs/{job_id(fourth)}")
    assert job["served_by"] == "local/1" and job["fallback_reason"] == "budget_spent"
    assert job["event_id"] == capped["id"]
    assert len(booth.calls) == 3  # the paid provider was not called for the 4th photo
    state = (await wait_settled(booth, capped["id"]))["budget"]
    assert state["paid_calls"] == 3 and state["spent"] and state["warning"]
    # another event's slot on the same provider keeps calling it
    assert (await booth.post("gemini", 2, photo())).status == 200
    assert len(booth.calls) == 4
    stats = await get(booth, f"/api/events/{capped['id']}/stats")
    assert stats["served_by_fallback"] == 1 and stats["fallback_reasons"] == {"budget_spent": 1}
    assert stats["paid_calls"] == 3


async def test_budget_spent_without_fallback_answers_on_failure(booth: Booth) -> None:
    await scripted(booth, 4, on_failure="original")
    await scripted(booth, 5)
    event = await create_event(booth, slots=["gemini/4", "gemini/5"], budget={"max_paid_calls": 1})
    assert (await booth.post("gemini", 4, photo())).status == 200
    await wait_settled(booth, event["id"])
    sent = photo()
    kept = await booth.post("gemini", 4, sent)  # on_failure original: the guest gets their photo
    assert kept.status == 200 and kept.body == sent
    refused = await booth.post("gemini", 5, photo())
    assert refused.status == 503 and refused.json()["error"] == "budget_spent"
    assert len(booth.calls) == 1


async def test_budget_by_cost_in_the_statistics_currency(booth_factory: Any) -> None:
    booth = booth_factory(cost_currency="usd")
    await scripted(booth, 1)
    event = await create_event(booth, slots=["gemini/1"], budget={"max_cost": 0.02})  # 2 × 0.01 USD
    for _ in range(2):
        assert (await booth.post("gemini", 1, photo())).status == 200
        await wait_settled(booth, event["id"])
    third = await booth.post("gemini", 1, photo())
    assert third.status == 503 and third.json()["error"] == "budget_spent"
    state = (await wait_settled(booth, event["id"]))["budget"]
    assert state["cost"] == pytest.approx(0.02) and state["spent"]


async def test_sixteen_booths_at_once_cannot_pass_a_budget_of_five(booth_factory: Any) -> None:
    booth = booth_factory(deadline_seconds=20.0, image_workers=2)
    await scripted(booth, 6, delay=0.5)
    event = await create_event(booth, slots=["gemini/6"], budget={"max_paid_calls": 5})
    answers = await asyncio.gather(*(booth.post("gemini", 6, photo()) for _ in range(16)))
    calls = [c for c in booth.calls]
    codes = [a.status if a.status == 200 else a.json()["error"] for a in answers]
    # The documented in-flight allowance for max_paid_calls is 0: reservations are one atomic UPDATE.
    assert len(calls) <= 5, codes
    assert codes.count(200) == len(calls)
    assert codes.count("budget_spent") >= 16 - 5 - codes.count("busy"), codes
    state = (await wait_settled(booth, event["id"]))["budget"]
    assert state["paid_calls"] == len(calls) <= 5


# --- export ----------------------------------------------------------------------------------------
async def test_export_zip_holds_originals_results_and_rows(booth: Booth) -> None:
    await scripted(booth, 7)
    event = await create_event(booth, slots=["gemini/7"])
    sent = [photo() for _ in range(3)]
    answers = [await booth.post("gemini", 7, data, fields={"guest": "Ann", "email": "a@b.c"}) for data in sent]
    answers.append(await booth.post("gemini", 7, b"broken"))
    async with booth.api() as client:
        response = await client.get(f"/api/events/{event['id']}/export.zip")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    names = archive.namelist()
    originals = sorted(n for n in names if n.startswith("originals/"))
    results = [n for n in names if n.startswith("results/")]
    assert len(originals) == 4 and len(results) == 3
    assert sorted(archive.read(n) for n in originals if n.endswith(".jpg")) == sorted(sent)
    for answer in answers[:3]:
        [name] = [n for n in results if job_id(answer) in n]
        assert archive.read(name) == answer.body
    rows = list(__import__("csv").DictReader(io.StringIO(archive.read("jobs.csv").decode())))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"succeeded", "rejected"}
    assert all(r["original"] in names for r in rows)
    as_json = json.loads(archive.read("jobs.json"))
    assert [j["id"] for j in as_json] == [r["id"] for r in rows]
    assert as_json[0]["fields"]["guest"] == "Ann"
    text = archive.read("jobs.csv").decode() + archive.read("jobs.json").decode()
    assert booth.upload_password not in text and "password" not in text


# --- presets ---------------------------------------------------------------------------------------
async def _preset_of(booth: Booth, event_id: int) -> bytes:
    async with booth.api() as client:
        response = await client.get(f"/api/events/{event_id}/preset")
    assert response.status_code == 200
    return response.content


async def test_preset_travels_to_a_fresh_server_with_identical_references(booth_factory: Any, tmp_path: Any) -> None:
    source = booth_factory()
    reference = local_photos.jpeg(local_photos.astronaut(0.5))
    overlay = make_png(300, 200)
    await source.configure("gemini", 1, kind="face_swap", prompt="keep {name|the guest}", fallback="local/3")
    await source.set_reference("gemini", 1, reference)
    await source.configure("local", 3, kind="prompt", options={"style": "sepia"}, result_shape="fixed",
                           result_size="1800x1200")  # fmt: skip
    async with source.api() as client:
        put = await client.put("/api/slots/local/3/overlay", files={"file": ("o.png", overlay, "image/png")})
        assert put.status_code == 200, put.text
    event = await create_event(source, slots=["gemini/1", "local/3"])
    preset = await _preset_of(source, event["id"])
    assert reference not in preset  # base64 inside JSON, not raw bytes

    target = booth_factory(data_dir=tmp_path / "second-server")
    fresh = await create_event(target, name="Elsewhere")
    async with target.api() as client:
        response = await client.post(
            f"/api/events/{fresh['id']}/preset", files={"file": ("p.json", preset, "application/json")}
        )
        assert response.status_code == 200, response.text
        assert response.json()["imported"] == ["gemini/1", "local/3"]
        one = (await client.get("/api/slots/gemini/1")).json()
        three = (await client.get("/api/slots/local/3")).json()
        ref_bytes = (await client.get(one["reference_url"])).content
        overlay_bytes = (await client.get(three["overlay_url"])).content
        event_now = (await client.get(f"/api/events/{fresh['id']}")).json()
    assert ref_bytes == reference and overlay_bytes == overlay
    assert (one["kind"], one["prompt"], one["fallback"], one["enabled"]) == (
        "face_swap", "keep {name|the guest}", "local/3", True
    )  # fmt: skip
    expected_options = LocalOptions(style="sepia").model_dump(mode="json")  # a slot save fills the defaults
    assert (three["options"], three["result_shape"], three["result_size"]) == (
        expected_options, "fixed", "1800x1200"
    )  # fmt: skip
    assert event_now["slots"] == ["gemini/1", "local/3"]


async def test_malformed_or_hostile_preset_changes_nothing(booth: Booth) -> None:
    await scripted(booth, 1, name="Before")
    event = await create_event(booth, slots=["gemini/1"])
    good = json.loads(await _preset_of(booth, event["id"]))
    before = await get(booth, "/api/slots")

    def variant(**change: Any) -> bytes:
        data = json.loads(json.dumps(good))
        data["slots"][0].update(change)
        return json.dumps(data).encode()

    second = json.loads(json.dumps(good))
    second["slots"].append({**good["slots"][0], "slot": "gemini/2", "options": {"mode": 7}})
    hostile = [
        b"",
        b"not json",
        b"[1, 2]",
        b"{" * 100_000,
        b"[" * 200_000 + b"]" * 200_000,  # nesting deeper than the parser's recursion
        json.dumps({**good, "format": "something-else"}).encode(),
        variant(name="Changed", slot="../../etc/passwd"),
        variant(name="Changed", slot="gemini/21"),
        variant(name="Changed", options={"mode": "invert", "extra": True}),
        variant(name="Changed", enabled="yes please"),
        variant(name="Changed", fallback="gemini/1"),  # its own fallback
        variant(name="Changed", reference={"sha256": "0" * 64, "data": "!!!"}),
        variant(name="Changed", reference={"sha256": "0" * 64, "data": base64.b64encode(b"GIF89a").decode()}),
        json.dumps({**good, "slots": [{**good["slots"][0], "name": "Changed"}, second["slots"][1]]}).encode(),
        json.dumps({**good, "slots": [{**good["slots"][0], "name": "Changed", "path": "/tmp/x"}]}).encode(),
    ]
    async with booth.api() as client:
        for body in hostile:
            response = await client.post("/api/presets", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 422, (body[:80], response.status_code, response.text[:300])
        huge = await client.post(
            "/api/presets", content=b" " * (65 * 1024 * 1024), headers={"content-type": "application/json"}
        )
        assert huge.status_code == 413
    assert await get(booth, "/api/slots") == before
    assert (await get(booth, f"/api/events/{event['id']}"))["slots"] == ["gemini/1"]


# --- clean-up --------------------------------------------------------------------------------------
async def test_clean_up_after_retention_keeps_statistics(booth: Booth) -> None:
    await scripted(booth, 8)
    event = await create_event(booth, slots=["gemini/8"], retention_days=2)
    answer = await booth.post("gemini", 8, photo())
    job = await get(booth, f"/api/jobs/{job_id(answer)}")
    services = booth.services
    photo_file = services.media.resolve((await services.jobs.get(job_id(answer))).photo_path)
    assert photo_file.exists() and job["result_url"]
    async with booth.api() as client:
        ended = (await client.post(f"/api/events/{event['id']}/end")).json()
        assert (await client.delete(f"/api/events/{event['id']}")).status_code == 200
    due = datetime.fromisoformat(ended["clean_up_at"])
    assert due - datetime.fromisoformat(ended["ends_at"]) == timedelta(days=2)
    settings, media, db = services.settings, services.media, services.db
    assert await event_cleanup.sweep(settings, media, db, now=due - timedelta(hours=1)) == 0
    assert photo_file.exists()
    assert await event_cleanup.sweep(settings, media, db, now=due + timedelta(minutes=1)) == 2
    assert not photo_file.exists()
    after = await get(booth, f"/api/jobs/{job_id(answer)}")
    assert after["photo_url"] is None and after["result_url"] is None
    stats = await get(booth, f"/api/events/{event['id']}/stats")  # a deleted, cleaned event keeps its numbers
    assert stats["received"] == 1 and stats["succeeded"] == 1


async def test_the_events_gallery_shows_the_events_photos_and_no_others(booth: Booth) -> None:
    """The event's `gallery_url` is the guest gallery (sharing/galleries.py) of that event's photos."""
    await scripted(booth, 7)
    await scripted(booth, 8)
    event = await create_event(booth, name="Gallery night", slots=["gemini/7"])
    mine = await booth.post("gemini", 7, photo())
    other = await booth.post("gemini", 8, photo())
    assert mine.status == other.status == 200
    token = event["gallery_url"].rsplit("/g/", 1)[1]
    async with booth.api() as client:
        page = await client.get(f"/g/{token}")
    assert page.status_code == 200
    assert job_id(mine) in page.text and job_id(other) not in page.text


async def test_budget_warns_at_eighty_percent_before_it_is_spent(booth: Booth) -> None:
    await scripted(booth, 9)
    event = await create_event(booth, name="Warned", slots=["gemini/9"], budget={"max_paid_calls": 5})
    for calls in range(1, 5):
        assert (await booth.post("gemini", 9, photo())).status == 200
        state = (await wait_settled(booth, event["id"]))["budget"]
        assert state["paid_calls"] == calls and not state["spent"]
        assert state["warning"] == (calls >= 4), (calls, state)  # 4 of 5 = 80 %
    [live] = [e for e in (await get(booth, "/api/live"))["events"] if e["id"] == event["id"]]
    assert live["budget"]["warning"] and not live["budget"]["spent"]
    async with booth.api() as client:
        tab = await client.get("/tabs/gemini?lang=en")
        other = await client.get("/tabs/local?lang=en")
    assert "Budget of “Warned” is 80% used." in tab.text
    assert "Warned" not in other.text  # a tab without the event's slots says nothing
    assert (await booth.post("gemini", 9, photo())).status == 200  # the 5th call is still paid for
    assert len(booth.calls) == 5
