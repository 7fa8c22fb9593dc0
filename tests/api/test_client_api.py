"""The client API (issue 26): keys, jobs with progress over Server-Sent Events, history, limits.

Everything through a real server on loopback with httpx; the provider is the scripted one (conftest), the
photos are real people (scikit-image's astronaut, Grace Hopper).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from boothgate.storage.models import ApiKey, Job
from tests.conftest import Booth
from tests.local_photos import astronaut, grace_hopper, jpeg

PHOTO = jpeg(astronaut(0.5))


class FakeClock:
    """Unix seconds the test moves by hand (the keys' minute windows and grace periods read it)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def make_key(booth: Booth, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "kiosk")
    async with booth.api() as admin:
        response = await admin.post("/api/keys", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def client(booth: Booth, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=booth.url, headers={"X-API-Key": key}, timeout=60)


async def submit(api: httpx.AsyncClient, slot: str = "gemini/1", photo: bytes = PHOTO, **params: Any) -> httpx.Response:
    fields = {"slot": slot, **{k: v for k, v in params.items() if k != "wait"}}
    query = {"wait": params["wait"]} if "wait" in params else None
    return await api.post("/api/v1/jobs", data=fields, files={"file": ("guest.jpg", photo, "image/jpeg")}, params=query)


async def poll(api: httpx.AsyncClient, url: str, until: set[str], timeout: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        body: dict[str, Any] = (await api.get(url)).json()
        if body["status"] in until or loop.time() > end:
            return body
        await asyncio.sleep(0.05)


async def sse_events(api: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    return await sse_events_from(api, url)


async def sse_events_from(api: httpx.AsyncClient, url: str, last_event_id: str | None = None) -> list[dict[str, Any]]:
    """Read a Server-Sent Events stream to its end (the wire format parsed by hand: `event:`, `id:`, `data:`)."""
    events: list[dict[str, Any]] = []
    headers = {"Last-Event-ID": last_event_id} if last_event_id else None
    async with api.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        current: dict[str, str] = {}
        async for line in response.aiter_lines():
            if not line:
                if "data" in current:
                    events.append(
                        {**json.loads(current["data"]), "_event": current.get("event"), "_id": current.get("id")}
                    )
                current = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value
    return events


# --- keys ---------------------------------------------------------------------------------
async def test_key_is_shown_once_stored_as_hash_and_listed_by_prefix(booth: Booth) -> None:
    created = await make_key(booth, name="Telegram bot", scopes=["gemini/1", "gemini"], rate_per_minute=30)
    key = created["key"]
    assert key.startswith("bg_") and len(key) > 40 and created["prefix"] == key[:10]
    async with booth.api() as admin:
        listed = (await admin.get("/api/keys")).json()
    assert [k["name"] for k in listed] == ["Telegram bot"]
    assert listed[0]["prefix"] == created["prefix"] and listed[0]["scopes"] == ["gemini", "gemini/1"]
    assert "key" not in listed[0] and key not in json.dumps(listed)
    async with booth.services.db.read() as session:
        row = (await session.scalars(select(ApiKey))).one()
    assert row.key_hash != key and key not in json.dumps(
        {c.key: str(getattr(row, c.key)) for c in ApiKey.__table__.columns}
    )


async def test_bad_key_inputs_are_refused_clearly(booth: Booth) -> None:
    async with booth.api() as admin:
        bad_scope = await admin.post("/api/keys", json={"name": "x", "scopes": ["nowhere/1"]})
        assert bad_scope.status_code == 422 and "nowhere" in bad_scope.text
        assert (await admin.post("/api/keys", json={"name": "x", "rate_per_minute": 0})).status_code == 422
        assert (await admin.delete("/api/keys/nope")).status_code == 404
    async with httpx.AsyncClient(base_url=booth.url) as anonymous:
        assert (await anonymous.get("/api/keys")).status_code == 401  # admin only
        no_key = await anonymous.get("/api/v1/slots")
        assert no_key.status_code == 401 and no_key.json()["error"] == "unauthorized"
        wrong = await anonymous.get("/api/v1/slots", headers={"X-API-Key": "bg_" + "x" * 43})
        assert wrong.status_code == 401


async def test_revoked_key_gets_401_at_once(booth: Booth) -> None:
    await booth.configure("gemini", 1)
    created = await make_key(booth)
    async with client(booth, created["key"]) as api:
        assert (await api.get("/api/v1/slots")).status_code == 200
        async with booth.api() as admin:
            assert (await admin.delete(f"/api/keys/{created['id']}")).status_code == 200
        refused = await api.get("/api/v1/slots")
        assert refused.status_code == 401
        assert (await submit(api)).status_code == 401


async def test_rotated_key_old_value_works_until_grace_ends(booth: Booth) -> None:
    clock = FakeClock()
    booth.services.api_keys.clock = clock
    created = await make_key(booth)
    async with booth.api() as admin:
        rotated = (await admin.post(f"/api/keys/{created['id']}/rotate", json={"grace_seconds": 600})).json()
    assert rotated["key"] != created["key"] and rotated["previous_prefix"] == created["prefix"]
    async with client(booth, created["key"]) as old, client(booth, rotated["key"]) as new:
        assert (await new.get("/api/v1/slots")).status_code == 200
        clock.now += 599
        assert (await old.get("/api/v1/slots")).status_code == 200
        clock.now += 2
        late = await old.get("/api/v1/slots")
        assert late.status_code == 401 and "rotated" in late.json()["message"]
        assert (await new.get("/api/v1/slots")).status_code == 200


async def test_61st_request_in_a_minute_gets_429_with_headers(booth: Booth) -> None:
    clock = FakeClock(1_800_000_000.0)  # on a minute boundary
    booth.services.api_keys.clock = clock
    created = await make_key(booth, rate_per_minute=60)
    async with client(booth, created["key"]) as api:
        for n in range(60):
            clock.now = 1_800_000_000.0 + n * 0.9  # 60 requests within 54 s of the same minute
            answer = await api.get("/api/v1/slots")
            assert answer.status_code == 200, n
            assert answer.headers["X-RateLimit-Limit"] == "60"
            assert answer.headers["X-RateLimit-Remaining"] == str(59 - n)
        clock.now = 1_800_000_000.0 + 55
        over = await api.get("/api/v1/slots")
        assert over.status_code == 429 and over.json()["error"] == "rate_limited"
        assert over.headers["Retry-After"] == "5"
        assert over.headers["X-RateLimit-Limit"] == "60" and over.headers["X-RateLimit-Remaining"] == "0"
        assert over.headers["X-RateLimit-Reset"] == str(1_800_000_060)
        clock.now = 1_800_000_060.5  # the next minute
        assert (await api.get("/api/v1/slots")).status_code == 200


async def test_photos_per_day_limit(booth: Booth) -> None:
    await booth.configure("gemini", 1)
    created = await make_key(booth, photos_per_day=1)
    async with client(booth, created["key"]) as api:
        first = await submit(api, wait=20)
        assert first.status_code == 200
        second = await submit(api)
        assert second.status_code == 429 and second.json()["error"] == "quota_exceeded"
        assert "Retry-After" in second.headers


async def test_slots_lists_only_the_keys_scope(booth: Booth) -> None:
    await booth.configure("gemini", 2, name="Космос", kind="prompt", prompt="in space")
    created = await make_key(booth, scopes=["gemini/2", "turbotext"])
    async with client(booth, created["key"]) as api:
        slots = (await api.get("/api/v1/slots")).json()
        assert {s["slot"] for s in slots} == {"gemini/2"} | {f"turbotext/{n}" for n in range(1, 21)}
        space = next(s for s in slots if s["slot"] == "gemini/2")
        assert space["name"] == "Космос" and space["enabled"] and space["kind"] == "prompt"
        out = await submit(api, slot="gemini/1")
        assert out.status_code == 403 and out.json()["error"] == "out_of_scope"


async def test_a_key_scoped_to_an_event_uses_the_slots_that_event_holds_while_it_runs(booth: Booth) -> None:
    for number in (5, 6):
        await booth.configure("gemini", number, kind="prompt", prompt="in space")
    async with booth.api() as admin:
        made = await admin.post("/api/events", json={"name": "Gala", "slots": ["gemini/5"]})
        assert made.status_code == 201, made.text
        event = made.json()
        bad = await admin.post("/api/keys", json={"name": "x", "scopes": ["event:gala"]})
        assert bad.status_code == 422 and "event:7" in bad.text
    created = await make_key(booth, name="gala kiosk", scopes=[f"event:{event['id']}"])
    assert created["scopes"] == [f"event:{event['id']}"]
    async with client(booth, created["key"]) as api:
        assert [s["slot"] for s in (await api.get("/api/v1/slots")).json()] == ["gemini/5"]
        outside = await submit(api, slot="gemini/6")
        assert outside.status_code == 403 and outside.json()["error"] == "out_of_scope"
        inside = await submit(api, slot="gemini/5")
        assert inside.status_code == 202, inside.text
        done = await poll(api, inside.json()["status_url"], {"succeeded", "failed"})
        assert done["status"] == "succeeded"
        async with booth.api() as admin:  # the event ends: its slots are no longer the key's
            assert (await admin.post(f"/api/events/{event['id']}/end")).status_code == 200
        assert (await api.get("/api/v1/slots")).json() == []
        after = await submit(api, slot="gemini/5")
        assert after.status_code == 403 and after.json()["error"] == "out_of_scope"


# --- jobs ---------------------------------------------------------------------------------
async def test_job_202_stages_in_order_over_sse_then_result(booth: Booth) -> None:
    await booth.configure("gemini", 1, options={"delay_seconds": 0.6})
    created = await make_key(booth, name="kiosk-1")
    async with client(booth, created["key"]) as api:
        accepted = await submit(api)
        assert accepted.status_code == 202
        body = accepted.json()
        assert set(body) >= {"id", "status_url", "result_url", "events_url"}
        assert body["status_url"] == f"/api/v1/jobs/{body['id']}"
        events = await sse_events(api, body["events_url"])
        stages = [e["stage"] for e in events]
        assert stages == ["queued", "preparing", "at_provider", "shaping", "succeeded"], stages
        assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)
        assert events[-1]["progress"] == 100 and [e["_id"] for e in events] == ["0", "1", "2", "3", "4"]
        status = (await api.get(body["status_url"])).json()
        assert status["status"] == "succeeded" and status["progress"] == 100 and status["error"] is None
        assert status["cost_usd"] == 0.01 and status["timings"]["total"] > 0
        result = await api.get(body["result_url"])
        assert result.status_code == 200 and result.headers["content-type"] == "image/jpeg"
        assert result.content[:2] == b"\xff\xd8"
        # Reconnecting with Last-Event-ID gives only what came after.
        again = await sse_events_from(api, body["events_url"], last_event_id="2")
        assert [e["stage"] for e in again] == ["shaping", "succeeded"]
    stats = await booth.stats()
    assert stats["clients"]["kiosk-1"]["all_time"]["succeeded"] == 1


async def test_job_polling_shows_at_provider_while_it_runs(booth: Booth) -> None:
    await booth.configure("gemini", 1, options={"delay_seconds": 1.5})
    created = await make_key(booth)
    async with client(booth, created["key"]) as api:
        body = (await submit(api)).json()
        seen = await poll(api, body["status_url"], {"at_provider", "succeeded"})
        assert seen["status"] == "at_provider" and seen["progress"] == 30
        not_ready = await api.get(body["result_url"])
        assert not_ready.status_code == 409 and not_ready.json()["error"] == "not_ready"
        done = await api.get(body["result_url"], params={"wait": 30})
        assert done.status_code == 200 and done.content[:2] == b"\xff\xd8"


async def test_wait_returns_the_image_like_the_booth(booth: Booth) -> None:
    await booth.configure("gemini", 1, prompt="a {style} portrait")
    created = await make_key(booth)
    async with client(booth, created["key"]) as api:
        answer = await submit(api, wait=30, style="golden")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        job_id = answer.headers["x-job-id"]
        assert answer.headers["X-RateLimit-Limit"] == "60"
    assert booth.calls[-1].prompt == "a golden portrait"
    async with booth.services.db.read() as session:
        job = await session.get(Job, job_id)
    assert job is not None and job.source == "api" and job.api_key_id == created["id"] and job.status == "succeeded"


async def test_failed_job_reports_the_booth_error(booth: Booth) -> None:
    await booth.configure("gemini", 1, options={"mode": "fail"})
    created = await make_key(booth)
    async with client(booth, created["key"]) as api:
        body = (await submit(api)).json()
        done = await poll(api, body["status_url"], {"failed", "succeeded"})
        assert done["status"] == "failed" and done["error"] == "provider_error" and done["http_status"] == 502
        result = await api.get(body["result_url"])
        assert result.status_code == 502 and result.json()["error"] == "provider_error"


async def test_cancel_stops_the_provider_call_and_never_repeats_it(booth: Booth) -> None:
    await booth.configure("gemini", 1, options={"delay_seconds": 3.0})
    created = await make_key(booth)
    async with client(booth, created["key"]) as api:
        body = (await submit(api)).json()
        await poll(api, body["status_url"], {"at_provider"})
        cancelled = await api.delete(body["status_url"])
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        events = await sse_events(api, body["events_url"])
        assert events[-1]["stage"] == "cancelled"
        result = await api.get(body["result_url"])
        assert result.status_code == 499 and result.json()["error"] == "cancelled"
        await asyncio.sleep(0.5)
    assert len(booth.calls) == 1  # the one call made, not made again
    async with booth.services.db.read() as session:
        job = await session.get(Job, body["id"])
    assert job is not None and job.status == "cancelled" and job.result_path is None


async def test_bad_job_requests(booth: Booth) -> None:
    await booth.configure("gemini", 1)
    created = await make_key(booth)
    async with client(booth, created["key"]) as api:
        no_slot = await api.post("/api/v1/jobs", files={"file": ("a.jpg", PHOTO, "image/jpeg")})
        assert no_slot.status_code == 422 and no_slot.json()["error"] == "bad_slot"
        # a multipart body with the slot and no file part at all (one file part of any name is the photo)
        no_file = await api.post("/api/v1/jobs", files={"slot": (None, "gemini/1")})
        assert no_file.status_code == 422 and no_file.json()["error"] == "no_file"
        missing = await submit(api, slot="gemini/21")
        assert missing.status_code == 422
        disabled = await submit(api, slot="gemini/2")
        assert disabled.status_code == 403 and disabled.json()["error"] == "slot_disabled"
        not_image = await submit(api, photo=b"not a photo at all", wait=10)
        assert not_image.status_code == 415 and not_image.json()["error"] == "unsupported_image"
        assert (await api.get("/api/v1/jobs/unknown")).status_code == 404
    assert list((booth.settings.data_dir / "api" / "incoming").iterdir()) == []  # nothing left behind


async def test_history_newest_first_with_cursor_and_filters(booth: Booth) -> None:
    await booth.configure("gemini", 1)
    await booth.configure("gemini", 3, options={"mode": "fail"})
    created = await make_key(booth)
    other = await make_key(booth, name="other")
    ids = []
    async with client(booth, created["key"]) as api:
        for n in range(5):
            answer = await submit(
                api, slot="gemini/3" if n == 2 else "gemini/1", photo=jpeg(grace_hopper(0.3 + n / 20)), wait=20
            )
            ids.append(answer.headers["x-job-id"])
        first = (await api.get("/api/v1/jobs", params={"limit": 2})).json()
        assert [j["id"] for j in first["jobs"]] == ids[::-1][:2]
        second = (await api.get("/api/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]})).json()
        third = (await api.get("/api/v1/jobs", params={"limit": 2, "cursor": second["next_cursor"]})).json()
        assert [j["id"] for j in second["jobs"] + third["jobs"]] == ids[::-1][2:] and third["next_cursor"] is None
        failed = (await api.get("/api/v1/jobs", params={"status": "failed"})).json()
        assert [j["id"] for j in failed["jobs"]] == [ids[2]]
        by_slot = (await api.get("/api/v1/jobs", params={"slot": "gemini/3"})).json()
        assert [j["id"] for j in by_slot["jobs"]] == [ids[2]]
        future = (await api.get("/api/v1/jobs", params={"since": "2999-01-01T00:00:00Z"})).json()
        assert future["jobs"] == []
        assert (await api.get("/api/v1/jobs", params={"cursor": "!!"})).status_code == 422
    async with client(booth, other["key"]) as stranger:
        assert (await stranger.get("/api/v1/jobs")).json()["jobs"] == []
        assert (await stranger.get(f"/api/v1/jobs/{ids[0]}")).status_code == 404


async def test_openapi_lists_every_v1_route_with_examples(booth: Booth) -> None:
    async with httpx.AsyncClient(base_url=booth.url) as anonymous:
        document = (await anonymous.get("/api/v1/openapi.json")).json()
    paths = document["paths"]
    assert set(paths) == {
        "/api/v1/slots", "/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/result",
        "/api/v1/jobs/{job_id}/events", "/api/v1/batches", "/api/v1/batches/{batch_id}",
        "/api/v1/batches/{batch_id}/zip",
    }  # fmt: skip
    for path, operations in paths.items():
        for method, operation in operations.items():
            examples = [
                c.get("example") for r in operation["responses"].values() for c in r.get("content", {}).values()
            ]
            assert any(e is not None for e in examples), (method, path)
    assert document["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"


async def test_key_never_in_logs_job_rows_or_answers(booth: Booth, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await booth.configure("gemini", 1)
    created = await make_key(booth)
    key = created["key"]
    seen: list[str] = []
    async with client(booth, key) as api:
        accepted = await submit(api)
        seen.append(accepted.text + json.dumps(dict(accepted.headers)))
        body = accepted.json()
        for url in (body["status_url"], "/api/v1/jobs", "/api/v1/slots"):
            answer = await api.get(url)
            seen.append(answer.text + json.dumps(dict(answer.headers)))
        await poll(api, body["status_url"], {"succeeded"})
        seen.append((await api.get(body["status_url"])).text)
        events = await sse_events(api, body["events_url"])
        seen.append(json.dumps(events))
    async with booth.api() as admin:
        seen.append((await admin.get("/api/keys")).text)
        seen.append((await admin.get("/api/jobs")).text)
    assert all(key not in text for text in seen)
    assert caplog.text and key not in caplog.text
    async with booth.services.db.read() as session:
        rows = (await session.scalars(select(Job))).all()
    assert rows and all(
        key not in json.dumps({c.key: str(getattr(r, c.key)) for c in Job.__table__.columns}) for r in rows
    )
    assert await asyncio.to_thread(files_holding, Path(booth.settings.data_dir), key) == []


def files_holding(folder: Path, text: str) -> list[Path]:
    """Text files under `folder` (journal, trash sidecars, logs) that contain `text`."""
    suffixes = (".json", ".jsonl", ".log", ".txt")
    return [
        p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes and text in p.read_text(errors="replace")
    ]
