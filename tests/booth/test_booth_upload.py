"""The upload link end to end: a real socket, DSLR Remote Pro's multipart, every status of design.md."""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest

from boothgate.cli.booth_client import BoothForm, _read_response, build_multipart, post_photo_async
from tests.conftest import Booth, make_jpeg, make_png, open_image


async def test_success_through_the_whole_path_with_expect_continue(booth: Booth) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="make it pop")
    photo = make_jpeg(1600, 1200, seed=1)

    answer = await booth.post("gemini", 1, photo)

    assert answer.got_continue, "the server must send 100 Continue before reading the body"
    assert answer.status == 200, answer.body[:300]
    assert answer.content_type == "image/jpeg"
    result = open_image(answer.body)
    original = open_image(photo)
    assert result.format == "JPEG"
    # the scripted provider inverts colours: the result is the guest's photo, processed
    probe = original.resize(result.size).getpixel((10, 10))
    inverted = result.getpixel((10, 10))
    assert all(abs((255 - a) - b) < 40 for a, b in zip(probe, inverted, strict=True))
    [call] = booth.calls
    assert call.prompt == "make it pop"
    assert call.kind == "prompt"


async def test_photo_is_downscaled_for_the_provider_and_orientation_applied(booth: Booth) -> None:
    await booth.configure("gemini", 2, prompt="x")
    # 6000×4000 with EXIF orientation 6 (rotate 90°): the provider must get an upright ≤2 MP image
    photo = make_jpeg(3000, 2000, seed=2, exif_orientation=6)
    answer = await booth.post("gemini", 2, photo)
    assert answer.status == 200
    [call] = booth.calls
    width, height = call.photo_size
    assert width * height <= booth.settings.provider_input_pixels
    assert height > width, "EXIF orientation 6 means the upright photo is portrait"


async def test_png_with_transparency_answers_png(booth: Booth) -> None:
    await booth.configure("gemini", 3, prompt="x", options={"mode": "png"})
    answer = await booth.post("gemini", 3, make_png(), content_type="image/png", filename="IMG.png")
    assert answer.status == 200
    assert answer.content_type == "image/png"
    assert open_image(answer.body).mode == "RGBA"


async def test_output_format_png_is_honoured(booth: Booth) -> None:
    await booth.configure("gemini", 4, prompt="x", output_format="png")
    answer = await booth.post("gemini", 4, make_jpeg(seed=4))
    assert answer.status == 200
    assert answer.content_type == "image/png"
    assert answer.body.startswith(b"\x89PNG")


async def test_file_field_and_header_passwords_are_accepted(booth: Booth) -> None:
    await booth.configure("gemini", 5, prompt="x")
    url = f"{booth.url}/booth/gemini/5"
    by_bearer = await post_photo_async(
        url, make_jpeg(seed=51), None, file_field="file", headers={"Authorization": f"Bearer {booth.upload_password}"}
    )
    by_api_key = await post_photo_async(url, make_jpeg(seed=52), None, headers={"X-Api-Key": booth.upload_password})
    assert (by_bearer.status, by_api_key.status) == (200, 200)


async def _status(booth: Booth, answer_coro: object) -> tuple[int, dict[str, object]]:
    answer = await answer_coro  # type: ignore[misc]
    return answer.status, answer.json()


async def test_status_codes_of_the_table(booth_factory) -> None:  # type: ignore[no-untyped-def]
    booth = booth_factory(max_upload_bytes=2_000_000)
    await booth.configure("gemini", 1, prompt="x")
    await booth.configure("gemini", 2, enabled=False, prompt="x")
    await booth.configure("gemini", 3, prompt="x", options={"mode": "fail"})
    await booth.configure("gemini", 4, prompt="x", options={"mode": "refuse"})
    await booth.configure("gemini", 5, prompt="x", options={"mode": "rate_limit"})
    await booth.configure("turbotext", 1, prompt="x")
    await booth.configure("gemini", 6, prompt="x", options={"mode": "not_image"})
    photo = make_jpeg(seed=9)
    url = f"{booth.url}/booth/gemini/1"

    cases = {
        "no file": (400, "no_file", _raw_post(url, *_fields_only(booth))),
        "not multipart": (400, "bad_multipart", _raw_post(url, b"hello", "text/plain")),
        "zero-byte file": (400, "empty_file", booth.post("gemini", 1, b"")),
        "wrong password": (401, "unauthorized", booth.post("gemini", 1, photo, password="nope")),
        "missing password": (401, "unauthorized", booth.post("gemini", 1, photo, password="")),
        "disabled slot": (403, "slot_disabled", booth.post("gemini", 2, photo)),
        "unknown number": (404, "slot_not_found", booth.post("gemini", 21, photo)),
        "unknown provider": (404, "slot_not_found", booth.post("midjourney", 1, photo)),
        "not a number": (404, "slot_not_found", booth.post("gemini", "1a", photo)),
        "too large": (413, "too_large", booth.post("gemini", 1, make_jpeg(2600, 2000, quality=100))),
        "text file named .jpg": (415, "unsupported_image", booth.post("gemini", 1, b"just text, not a photo")),
        "truncated jpeg": (422, "corrupt_image", booth.post("gemini", 1, photo[: len(photo) // 2])),
        "provider quota": (429, "rate_limited", booth.post("gemini", 5, photo)),
        "provider failed": (502, "provider_error", booth.post("gemini", 3, photo)),
        "provider refused": (502, "provider_refused", booth.post("gemini", 4, photo)),
        "provider answered no image": (502, "provider_bad_image", booth.post("gemini", 6, photo)),
        "provider not configured": (503, "provider_not_configured", booth.post("turbotext", 1, photo)),
    }
    for name, (status, code, coro) in cases.items():
        got_status, body = await _status(booth, coro)
        assert (got_status, body.get("error")) == (status, code), f"{name}: {got_status} {body}"
        assert body["message"] and body["job_id"], name
    # 503 names the setting to fix
    answer = await booth.post("turbotext", 1, photo)
    assert "BOOTHGATE_TURBOTEXT_API_KEY" in answer.json()["message"]


def _fields_only(booth: Booth) -> tuple[bytes, str]:
    return build_multipart(None, BoothForm(booth.upload_password))


async def _raw_post(url: str, body: bytes, content_type: str):  # type: ignore[no-untyped-def]
    return await post_photo_async(url, b"", None, body=body, headers={"Content-Type": content_type})


async def test_lying_content_length_is_cut_off_at_the_cap(booth_factory) -> None:  # type: ignore[no-untyped-def]
    booth = booth_factory(max_upload_bytes=200_000)
    await booth.configure("gemini", 1, prompt="x")
    big = make_jpeg(1500, 1500, quality=100)
    assert len(big) > 200_000
    body, ctype = build_multipart(big, BoothForm(booth.upload_password))
    # Honest header over the cap: refused before the body is read (no 100 Continue).
    honest = await post_photo_async(f"{booth.url}/booth/gemini/1", big, booth.upload_password)
    assert honest.status == 413 and not honest.got_continue
    # A client that claims a small length but streams more is stopped by counting, not by trusting.
    reader, writer = await asyncio.open_connection("127.0.0.1", int(booth.url.rsplit(":", 1)[1]))
    writer.write(
        (
            f"POST /booth/gemini/1 HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    for start in range(0, len(body), 65536):
        chunk = body[start : start + 65536]
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    status, _headers, response = await asyncio.wait_for(_read_response(reader), 10)
    writer.close()
    assert status == 413, response[:200]
    assert json.loads(response)["error"] == "too_large"


async def test_slow_provider_answers_504_before_the_deadline_and_trashes_the_original(booth_factory) -> None:  # type: ignore[no-untyped-def]
    booth = booth_factory(deadline_seconds=2.0)
    await booth.configure("gemini", 7, prompt="x", options={"delay_seconds": 30})
    photo = make_jpeg(seed=7)
    started = time.monotonic()
    answer = await booth.post("gemini", 7, photo, fields={"id": "CY04N068111304S2L_00000007."})
    elapsed = time.monotonic() - started
    assert answer.status == 504
    assert answer.json()["error"] == "deadline"
    assert elapsed <= 2.0 + 0.5, f"answered after {elapsed:.2f} s"
    job_id = answer.json()["job_id"]
    originals = [p for p in booth.trash_files() if p.stem == job_id and p.suffix == ".jpg"]
    sidecars = [p for p in booth.trash_files() if p.stem == job_id and p.suffix == ".json"]
    assert len(originals) == 1 and originals[0].read_bytes() == photo
    sidecar = json.loads(sidecars[0].read_text())
    assert sidecar["error"] == "deadline"
    assert sidecar["slot"] == "gemini/7"
    assert sidecar["metadata"]["id"] == "CY04N068111304S2L_00000007."
    assert 0 <= sidecar["timings"]["receive"] <= 2.0, sidecar["timings"]  # the server's own clock, inside the deadline
    assert originals[0].parent.name == time.strftime("%Y-%m-%d", time.gmtime())


async def test_on_failure_original_answers_the_guest_photo(booth: Booth) -> None:
    await booth.configure("gemini", 8, prompt="x", on_failure="original", options={"mode": "fail"})
    photo = make_jpeg(seed=8)
    answer = await booth.post("gemini", 8, photo)
    assert answer.status == 200
    assert answer.body == photo
    assert answer.headers["x-boothgate-fallback"] == "provider_error"
    # still a failure in the books, and the original is kept in trash
    stats = await booth.stats()
    assert stats["providers"]["gemini"]["today"]["failed"] == 1
    assert any(p.suffix == ".jpg" for p in booth.trash_files())


async def test_same_photo_again_returns_stored_result_without_calling_the_provider(booth: Booth) -> None:
    await booth.configure("gemini", 9, prompt="x")
    photo = make_jpeg(seed=99)
    first = await booth.post("gemini", 9, photo)
    second = await booth.post("gemini", 9, photo)
    assert first.status == second.status == 200
    assert first.body == second.body
    assert len(booth.calls) == 1
    assert second.headers["x-reused-from"] == first.headers["x-job-id"]
    # after an edit of the slot the same photo is processed again
    await booth.configure("gemini", 9, prompt="y")
    third = await booth.post("gemini", 9, photo)
    assert third.status == 200 and len(booth.calls) == 2


async def test_identical_concurrent_posts_share_one_provider_call(booth: Booth) -> None:
    await booth.configure("gemini", 10, prompt="x", options={"delay_seconds": 0.8})
    photo = make_jpeg(seed=10)
    first, second = await asyncio.gather(booth.post("gemini", 10, photo), booth.post("gemini", 10, photo))
    assert first.status == second.status == 200
    assert first.body == second.body
    assert len(booth.calls) == 1
    stats = await booth.stats()
    assert stats["providers"]["gemini"]["today"]["succeeded"] == 2


async def test_metadata_kept_and_password_never_stored_or_logged(booth: Booth, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG")
    await booth.configure("gemini", 11, prompt="x")
    await booth.configure("gemini", 12, prompt="x", options={"mode": "fail"})
    fields = {"eventkitesessionid": "abc", "survey1_text_7": "yes", "{qr1}": "QR-VALUE"}
    ok = await booth.post("gemini", 11, make_jpeg(seed=11), fields=fields)
    failed = await booth.post("gemini", 12, make_jpeg(seed=12), fields=fields)
    assert ok.status == 200 and failed.status == 502
    async with booth.api() as client:
        job = (await client.get(f"/api/jobs/{ok.headers['x-job-id']}")).json()
        jobs_listing = (await client.get("/api/jobs")).text
    assert job["meta"]["version"] == "3.30.2"
    assert job["meta"]["eventkitesessionid"] == "abc"
    assert job["meta"]["{qr1}"] == "QR-VALUE"
    assert job["meta"]["filename"] == "IMG_0003.JPG"
    assert "password" not in job["meta"]
    secret = booth.upload_password
    assert secret not in jobs_listing
    assert secret not in caplog.text
    for path in booth.trash_files():
        assert secret.encode() not in path.read_bytes()
    db_bytes = b"".join(p.read_bytes() for p in booth.settings.data_dir.glob("boothgate.db*"))
    stored_password_rows = db_bytes.count(secret.encode())
    assert stored_password_rows == 0, "the upload password from the environment must not be written to the database"


async def test_statistics_match_the_answers_given(booth: Booth) -> None:
    await booth.configure("gemini", 13, prompt="x")
    await booth.configure("gemini", 14, prompt="x", options={"mode": "fail"})
    answers = [
        await booth.post("gemini", 13, make_jpeg(seed=131)),
        await booth.post("gemini", 13, make_jpeg(seed=132)),
        await booth.post("gemini", 14, make_jpeg(seed=141)),
        await booth.post("gemini", 13, make_jpeg(seed=133), password="wrong"),
    ]
    assert [a.status for a in answers] == [200, 200, 502, 401]
    stats = await booth.stats()
    today = stats["providers"]["gemini"]["today"]
    assert today["received"] == 4
    assert (today["succeeded"], today["failed"], today["rejected"], today["timed_out"]) == (2, 1, 1, 0)
    assert today == stats["providers"]["gemini"]["all_time"]
    # from the two succeeded jobs' own recorded times: the average exact, the p95 the nearest rank (of 2
    # values the larger) rounded up to the next tenth of a second, as the histogram keeps it
    async with booth.api() as client:
        seconds = [
            (await client.get(f"/api/jobs/{a.headers['x-job-id']}")).json()["total_seconds"] for a in answers[:2]
        ]
    assert today["avg_seconds"] == pytest.approx(sum(seconds) / 2, abs=1e-3)
    assert today["p95_seconds"] == pytest.approx(math.ceil(round(max(seconds) * 10, 6)) / 10, abs=1e-9)
    assert abs(today["cost_usd"] - 0.02) < 1e-9
    slot13 = next(s for s in stats["slots"] if s["provider"] == "gemini" and s["number"] == 13)
    assert slot13["today"]["succeeded"] == 2 and slot13["today"]["rejected"] == 1
    assert stats["upload_password"] == booth.upload_password


async def test_wrong_passwords_are_throttled(booth_factory) -> None:  # type: ignore[no-untyped-def]
    booth = booth_factory(auth_max_failures=3)
    await booth.configure("gemini", 1, prompt="x")
    photo = make_jpeg(seed=1)
    statuses = [(await booth.post("gemini", 1, photo, password="bad")).status for _ in range(3)]
    assert statuses == [401, 401, 401]
    locked = await booth.post("gemini", 1, photo)  # even the right password waits out the lockout
    assert locked.status == 429
    assert locked.json()["error"] == "rate_limited"


async def test_get_on_an_upload_link_explains_itself(booth: Booth) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.get(f"{booth.url}/booth/gemini/1")
    assert response.status_code == 405
    assert "upload link" in response.json()["message"]


async def test_a_booth_held_back_for_a_wrong_password_does_not_hold_up_the_next(booth: Booth) -> None:
    """Admission runs one photo at a time on SQLite (spine.py `_admission_lane`); the throttle's hold of a
    wrong password comes before it, so a stranger being held back never delays a booth with the password.
    The wrong password is in the link, so it is checked after the last byte (a form field is checked as it
    arrives)."""
    from tests.waits import eventually

    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    photo = make_jpeg(400, 300, seed=21)

    async def stranger() -> int:
        answer = await post_photo_async(f"{booth.url}/booth/gemini/1?password=wrong", photo, None)
        return answer.status

    for _ in range(8):  # failures from this address: the next wrong password is held 2 s before its 401
        assert await stranger() == 401
    throttle = booth.services.ingest.throttle
    held = asyncio.create_task(stranger())
    await eventually(lambda: throttle._records[throttle.key("127.0.0.1")].failures >= 9, "the wrong one to be held")
    answer = await booth.post("gemini", 1, make_jpeg(400, 300, seed=22))
    assert answer.status == 200, answer.body[:200]
    assert not held.done(), "the stranger's hold ended first: the booth with the password waited behind it"
    assert await held == 401
