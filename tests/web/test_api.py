"""The JSON API: slots, references, statistics, upload password, jobs, health."""

from __future__ import annotations

import hashlib

import httpx

from boothgate.ops.banner import lan_addresses
from boothgate.providers.registry import TABS
from tests.conftest import ADMIN, Booth, make_jpeg


async def test_api_needs_admin_credentials(booth: Booth) -> None:
    async with httpx.AsyncClient(base_url=booth.url) as anonymous:
        assert (await anonymous.get("/api/slots")).status_code == 401
        wrong = await anonymous.get("/api/slots", auth=(ADMIN[0], "wrong"))
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Basic")


async def test_twenty_slots_per_tab_exist_disabled_and_empty(booth: Booth) -> None:
    async with booth.api() as client:
        slots = (await client.get("/api/slots")).json()
    assert len(slots) == 20 * len(TABS)
    assert {(s["provider"], s["number"]) for s in slots} == {(p, n) for p in TABS for n in range(1, 21)}
    assert not any(s["enabled"] for s in slots)
    assert all(s["prompt"] == "" and not s["has_reference"] for s in slots)
    first = next(s for s in slots if s["provider"] == "gemini" and s["number"] == 1)
    # opened at 127.0.0.1 on a server listening on every interface: the link uses the LAN address (issue 22)
    lan = lan_addresses()
    port = booth.url.rsplit(":", 1)[1]
    assert first["upload_url"] == (f"http://{lan[0]}:{port}" if lan else booth.url) + "/booth/gemini/1"
    assert first["on_failure"] == "error" and first["output_format"] == "jpeg"


async def test_partial_update_and_validation(booth: Booth) -> None:
    async with booth.api() as client:
        changed = await client.put("/api/slots/gemini/3", json={"name": "Космос", "kind": "background"})
        assert changed.status_code == 200
        assert changed.json()["name"] == "Космос" and changed.json()["kind"] == "background"
        assert changed.json()["problems"] == ["reference_required"]
        again = (await client.put("/api/slots/gemini/3", json={"prompt": "stars"})).json()
        assert again["name"] == "Космос" and again["prompt"] == "stars"
        bad_kind = await client.put("/api/slots/gemini/3", json={"kind": "teleport"})
        assert bad_kind.status_code == 422
        assert bad_kind.json()["detail"][0]["loc"][-1] == "kind"
        bad_option = await client.put("/api/slots/gemini/3", json={"options": {"delay_seconds": -1}})
        assert bad_option.status_code == 422
        assert bad_option.json()["detail"][0]["loc"] == ["options", "delay_seconds"]
        unknown_field = await client.put("/api/slots/gemini/3", json={"colour": "red"})
        assert unknown_field.status_code == 422
        assert (await client.put("/api/slots/gemini/21", json={"name": "x"})).status_code == 404
        assert (await client.get("/api/slots/nope/1")).status_code == 404


async def test_reference_upload_validation_and_removal(booth: Booth) -> None:
    reference = make_jpeg(640, 480, seed=5)
    async with booth.api() as client:
        put = await client.put("/api/slots/gemini/4/reference", files={"file": ("bg.jpg", reference, "image/jpeg")})
        assert put.status_code == 200
        slot = put.json()
        assert slot["has_reference"]
        assert (await client.get(slot["reference_url"])).content == reference
        thumb = await client.get(slot["reference_thumbnail_url"])
        assert thumb.headers["content-type"] == "image/jpeg" and len(thumb.content) < len(reference)
        stored = [p for p in (booth.settings.data_dir / "references").rglob("*") if p.is_file()]
        assert [p.name for p in stored] == [f"{hashlib.sha256(reference).hexdigest()}.jpg"], "stored by content"
        not_image = await client.put("/api/slots/gemini/4/reference", files={"file": ("x.jpg", b"text", "image/jpeg")})
        assert not_image.status_code == 415
        truncated = await client.put(
            "/api/slots/gemini/4/reference", files={"file": ("x.jpg", reference[:3000], "image/jpeg")}
        )
        assert truncated.status_code == 422
        assert (await client.get("/api/slots/gemini/4")).json()["has_reference"], "a bad upload keeps the old one"
        removed = await client.delete("/api/slots/gemini/4/reference")
        assert removed.status_code == 200 and not removed.json()["has_reference"]
        assert not any(p.is_file() for p in (booth.settings.data_dir / "references").rglob("*"))
        assert (await client.get("/api/slots/gemini/4/reference")).status_code == 404


async def test_face_swap_without_reference_is_refused_with_a_clear_message(booth: Booth) -> None:
    await booth.configure("gemini", 5, kind="face_swap", prompt="x")
    answer = await booth.post("gemini", 5, make_jpeg(seed=5))
    assert answer.status == 503
    assert answer.json()["error"] == "slot_incomplete"
    assert "reference" in answer.json()["message"]
    await booth.set_reference("gemini", 5, make_jpeg(seed=6))
    answer = await booth.post("gemini", 5, make_jpeg(seed=5))
    assert answer.status == 200
    assert booth.calls[-1].has_reference and booth.calls[-1].kind == "face_swap"


async def test_upload_password_rotation(booth_factory) -> None:  # type: ignore[no-untyped-def]
    booth = booth_factory(upload_password=None)
    async with booth.api() as client:
        old = (await client.get("/api/stats")).json()["upload_password"]
        assert len(old) >= 12
        rotated = await client.post("/api/upload-password/rotate")
        new = rotated.json()["upload_password"]
        assert new != old
        assert (await client.get("/api/stats")).json()["upload_password"] == new
    await booth.configure("gemini", 1, prompt="x")
    assert (await booth.post("gemini", 1, make_jpeg(), password=old)).status == 401
    assert (await booth.post("gemini", 1, make_jpeg(), password=new)).status == 200


async def test_rotation_refused_when_password_comes_from_environment(booth: Booth) -> None:
    async with booth.api() as client:
        response = await client.post("/api/upload-password/rotate")
    assert response.status_code == 409
    assert "BOOTHGATE_UPLOAD_PASSWORD" in response.json()["detail"]


async def test_jobs_listing_filters_and_media(booth: Booth) -> None:
    await booth.configure("gemini", 6, prompt="x")
    await booth.configure("gemini", 7, prompt="x", options={"mode": "fail"})
    photo = make_jpeg(seed=61)
    ok = await booth.post("gemini", 6, photo)
    failed = await booth.post("gemini", 7, make_jpeg(seed=71))
    async with booth.api() as client:
        everything = (await client.get("/api/jobs")).json()
        assert [j["id"] for j in everything] == [failed.json()["job_id"], ok.headers["x-job-id"]]
        only_failed = (await client.get("/api/jobs", params={"status": "failed"})).json()
        assert [j["slot"] for j in only_failed] == [7]
        by_slot = (await client.get("/api/jobs", params={"provider": "gemini", "slot": 6})).json()
        assert len(by_slot) == 1
        job = (await client.get(f"/api/jobs/{ok.headers['x-job-id']}")).json()
        assert (await client.get(job["photo_url"])).content == photo
        assert (await client.get(job["result_url"])).content == ok.body
        failed_job = (await client.get(f"/api/jobs/{failed.json()['job_id']}")).json()
        assert failed_job["in_trash"] and failed_job["result_url"] is None
        assert (await client.get(failed_job["photo_url"])).status_code == 200, "trashed originals stay viewable"
        assert (await client.get("/api/jobs/doesnotexist")).status_code == 404


async def test_try_it_runs_the_booth_path_without_password_even_when_disabled(booth: Booth) -> None:
    await booth.configure("gemini", 8, enabled=False, prompt="try me")
    async with booth.api() as client:
        response = await client.post(
            "/api/slots/gemini/8/try", files={"file": ("guest.jpg", make_jpeg(seed=8), "image/jpeg")}
        )
    body = response.json()
    assert body["status"] == 200
    assert body["job"]["source"] == "try" and body["job"]["result_url"]
    assert booth.calls[-1].prompt == "try me"
    stats = await booth.stats()
    assert stats["providers"]["gemini"]["all_time"]["received"] == 0, "trials are not guests' photos"


async def test_health_lists_providers_without_secrets(booth_factory) -> None:  # type: ignore[no-untyped-def]
    booth = booth_factory(turbotext_api_key="tt-secret-key-1234")
    async with httpx.AsyncClient(base_url=booth.url) as anonymous:
        health = await anonymous.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["database"] is True
    assert set(body["providers"]) == set(TABS)
    assert body["providers"]["turbotext"]["configured"] is True
    assert "tt-secret-key-1234" not in health.text
    async with booth.api() as client:
        for path in ("/api/providers", "/api/slots", "/api/stats", "/api/jobs"):
            assert "tt-secret-key-1234" not in (await client.get(path)).text
