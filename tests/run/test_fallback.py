"""The fallback chain with test-registered cloud providers (the scripted provider on several tabs):
validation of the slot field, cloud → cloud hand-offs, chains, the primary's on_failure when everything
fails, the hedge when the primary wins after all, Try it of the fallback alone, and statistics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Booth, KeyedProvider, ScriptedProvider, make_jpeg

CLASSES = {"gemini": ScriptedProvider, "openai": ScriptedProvider, "fal": ScriptedProvider, "turbotext": KeyedProvider}

_seed = iter(range(100, 10_000))


def photo() -> bytes:
    return make_jpeg(640, 480, seed=next(_seed))


@pytest.fixture
def booth(booth_factory: Any) -> Booth:
    result: Booth = booth_factory(CLASSES, deadline_seconds=6.0, fallback_default_seconds=2.0)
    return result


async def put(booth: Booth, provider: str, number: int, **fields: Any) -> httpx.Response:
    async with booth.api() as client:
        return await client.put(f"/api/slots/{provider}/{number}", json=fields)


async def slot(
    booth: Booth, provider: str, number: int, mode: str = "invert", delay: float = 0.0, **fields: Any
) -> None:
    fields.setdefault("prompt", "x")
    await booth.configure(provider, number, kind="prompt", options={"mode": mode, "delay_seconds": delay}, **fields)


async def job_of(booth: Booth, job_id: str) -> dict[str, Any]:
    async with booth.api() as client:
        response = await client.get(f"/api/jobs/{job_id}")
    result: dict[str, Any] = response.json()
    return result


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("gemini/1", "its own fallback"),
        ("local", "provider/number"),
        ("gemini/21", "provider/number"),
        ("gemini/0", "provider/number"),
        ("nowhere/1", "no tab"),
    ],
)
async def test_invalid_fallbacks_are_refused_with_a_reason(booth: Booth, value: str, words: str) -> None:
    response = await put(booth, "gemini", 1, fallback=value)
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["fallback"] and words in detail["msg"]
    async with booth.api() as client:
        assert (await client.get("/api/slots/gemini/1")).json()["fallback"] is None


async def test_cycles_are_refused_and_empty_clears(booth: Booth) -> None:
    assert (await put(booth, "gemini", 1, fallback="openai/1")).status_code == 200
    assert (await put(booth, "openai", 1, fallback="fal/1")).status_code == 200
    looped = await put(booth, "fal", 1, fallback="gemini/1")
    assert looped.status_code == 422
    assert "gemini/1" in looped.json()["detail"][0]["msg"] and "loop" in looped.json()["detail"][0]["msg"]
    two = await put(booth, "openai", 1, fallback="gemini/1")
    assert two.status_code == 422
    # Any tab, including one whose provider is missing in this build, is a valid target.
    assert (await put(booth, "fal", 1, fallback="local/3")).json()["fallback"] == "local/3"
    cleared = await put(booth, "gemini", 1, fallback="")
    assert cleared.status_code == 200 and cleared.json()["fallback"] is None
    assert (await put(booth, "fal", 1, fallback="gemini/1")).status_code == 200  # no loop any more


# --- hand-offs ------------------------------------------------------------------------------------


async def test_a_failing_cloud_slot_hands_the_photo_to_another_cloud_slot(booth: Booth) -> None:
    await slot(booth, "openai", 1)
    await slot(booth, "gemini", 1, mode="fail", fallback="openai/1")

    answer = await booth.post("gemini", 1, photo())

    assert answer.status == 200 and answer.content_type == "image/jpeg"
    job = await job_of(booth, answer.headers["x-job-id"])
    assert (job["served_by"], job["fallback_reason"]) == ("openai/1", "provider_error")
    assert len(booth.calls) == 2
    assert booth.calls[1].deadline_remaining < booth.calls[0].deadline_remaining  # the time that was left
    assert job["provider_notes"]["fallback_route"] == ["gemini/1: provider_error"]


async def test_a_chain_is_followed_past_failing_and_unusable_slots(booth: Booth) -> None:
    await slot(booth, "fal", 2)
    await booth.configure("turbotext", 2, kind="prompt", prompt="x", fallback="fal/2")  # no key: skipped
    await slot(booth, "openai", 2, mode="rate_limit", fallback="turbotext/2")
    await slot(booth, "gemini", 2, mode="refuse", fallback="openai/2")

    answer = await booth.post("gemini", 2, photo())

    assert answer.status == 200
    job = await job_of(booth, answer.headers["x-job-id"])
    assert (job["served_by"], job["fallback_reason"]) == ("fal/2", "provider_refused")
    assert job["provider_notes"]["fallback_route"] == [
        "gemini/2: provider_refused",
        "openai/2: rate_limited",
        "turbotext/2: skipped (not configured)",
    ]


async def test_when_the_fallback_fails_too_the_primary_on_failure_decides(booth: Booth) -> None:
    await slot(booth, "openai", 3, mode="fail")
    await slot(booth, "gemini", 3, mode="rate_limit", fallback="openai/3")
    await slot(booth, "gemini", 4, mode="rate_limit", fallback="openai/3", on_failure="original")

    error = await booth.post("gemini", 3, photo())
    assert error.status == 429 and error.json()["error"] == "rate_limited"  # the primary's error answers
    assert "openai/3: provider_error" in error.json()["message"]

    original = photo()
    kept = await booth.post("gemini", 4, original)
    assert kept.status == 200 and kept.body == original


async def test_errors_that_are_not_the_providers_fault_do_not_fall_back(booth: Booth) -> None:
    await slot(booth, "openai", 5)
    await slot(booth, "gemini", 5, mode="crash", fallback="openai/5")
    answer = await booth.post("gemini", 5, photo())
    assert answer.status == 500
    assert len(booth.calls) == 1


async def test_hedged_fallback_loses_to_a_primary_that_answers_first(booth: Booth, booth_factory: Any) -> None:
    # A fallback budget longer than the deadline: the hedge starts it at once, alongside the primary.
    hedging: Booth = booth_factory(CLASSES, deadline_seconds=6.0, fallback_default_seconds=30.0)
    await slot(hedging, "openai", 6, delay=4.0)
    await slot(hedging, "gemini", 6, delay=0.5, fallback="openai/6")

    answer = await hedging.post("gemini", 6, photo())

    assert answer.status == 200
    job = await job_of(hedging, answer.headers["x-job-id"])
    assert (job["served_by"], job["fallback_reason"]) == ("gemini/6", None)
    assert sorted(call.photo_size for call in hedging.calls) == [(640, 480), (640, 480)]  # both ran


async def test_try_it_can_run_the_fallback_alone(booth: Booth) -> None:
    await slot(booth, "openai", 7)
    await slot(booth, "gemini", 7, fallback="openai/7")
    await slot(booth, "gemini", 8)
    async with booth.api() as client:
        files = {"fileToUpload": ("p.jpg", photo(), "image/jpeg")}
        tried = (await client.post("/api/slots/gemini/7/try?fallback_only=true", files=files)).json()
        files = {"fileToUpload": ("p.jpg", photo(), "image/jpeg")}
        lonely = (await client.post("/api/slots/gemini/8/try?fallback_only=true", files=files)).json()
    assert tried["status"] == 200
    assert (tried["job"]["served_by"], tried["job"]["fallback_reason"]) == ("openai/7", "fallback_only")
    assert len(booth.calls) == 1  # the primary was not called
    assert lonely["status"] == 400 and lonely["error"] == "no_fallback"


async def test_statistics_count_answers_served_by_fallbacks(booth: Booth) -> None:
    await slot(booth, "openai", 9)
    await slot(booth, "gemini", 9, mode="fail", fallback="openai/9")
    await slot(booth, "gemini", 10)
    for number in (9, 9, 10):
        assert (await booth.post("gemini", number, photo())).status == 200

    stats = await booth.stats()
    by_slot = {(s["provider"], s["number"]): s for s in stats["slots"]}
    assert by_slot[("gemini", 9)]["all_time"]["served_by_fallback"] == 2
    assert by_slot[("gemini", 9)]["all_time"]["succeeded"] == 2
    assert by_slot[("gemini", 10)]["all_time"]["served_by_fallback"] == 0
    assert stats["providers"]["gemini"]["today"]["served_by_fallback"] == 2


async def test_a_fallback_served_result_is_not_reused_for_the_same_photo(booth: Booth) -> None:
    """The same photo again, nothing about the slot changed: the fallback's answer is not this slot's, so the
    primary is tried again (a result the slot itself made would be reused: see test_booth_upload.py)."""
    await slot(booth, "openai", 11)
    await slot(booth, "gemini", 11, mode="fail", fallback="openai/11")
    same = photo()
    first = await booth.post("gemini", 11, same)
    assert first.status == 200 and (await job_of(booth, first.headers["x-job-id"]))["served_by"] == "openai/11"
    tried = len(booth.calls)
    again = await booth.post("gemini", 11, same)
    assert again.status == 200 and "x-reused-from" not in again.headers
    assert len(booth.calls) == tried + 2, "the primary was called again (and failed over again)"
    job = await job_of(booth, again.headers["x-job-id"])
    assert job["served_by"] == "openai/11"


async def test_the_hedge_follows_the_fallbacks_run_times_read_back_after_a_restart(booth_factory: Any) -> None:
    first: Booth = booth_factory(CLASSES, deadline_seconds=6.0, fallback_default_seconds=30.0)
    await slot(first, "openai", 13, delay=0.2)
    for _ in range(3):  # openai/13's history: runs of about 0.2 s
        assert (await first.post("openai", 13, photo())).status == 200

    # A new server on the same data folder: the run times come back from the job table.
    second: Booth = booth_factory(CLASSES, deadline_seconds=6.0, fallback_default_seconds=30.0)
    await slot(second, "openai", 14, delay=0.2)  # no history: given 30 s, so it is started at once
    await slot(second, "gemini", 13, delay=2.0, fallback="openai/13")
    await slot(second, "gemini", 14, delay=2.0, fallback="openai/14")
    known = await second.post("gemini", 13, photo())
    unknown = await second.post("gemini", 14, photo())

    # openai/13 needs ~0.2 s: the hedge waits until ~4.5 s, and gemini/13 answers at 2 s by itself.
    known_job = await job_of(second, known.headers["x-job-id"])
    assert (known_job["served_by"], known_job["fallback_reason"]) == ("gemini/13", None)
    unknown_job = await job_of(second, unknown.headers["x-job-id"])
    assert (unknown_job["served_by"], unknown_job["fallback_reason"]) == ("openai/14", "slow")


async def test_a_slot_whose_provider_is_not_set_up_is_served_by_its_fallback(booth: Booth) -> None:
    await slot(booth, "openai", 15)
    await booth.configure("turbotext", 15, kind="prompt", prompt="x", fallback="openai/15")  # no key set
    await booth.configure("turbotext", 16, kind="prompt", prompt="x")

    answer = await booth.post("turbotext", 15, photo())
    alone = await booth.post("turbotext", 16, photo())

    assert answer.status == 200
    job = await job_of(booth, answer.headers["x-job-id"])
    assert (job["served_by"], job["fallback_reason"]) == ("openai/15", "provider_not_configured")
    assert alone.status == 503 and alone.json()["error"] == "provider_not_configured"
