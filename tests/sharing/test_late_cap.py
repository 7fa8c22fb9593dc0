"""The cap on provider calls kept going past their booth's answer (booth/late.py `MAX_KEPT` = 32): with 33
slow calls at once, the first 32 survive their booth's deadline and each becomes its guest page's late
result; the 33rd is cancelled at its answer "as without a late result" — its job claims no late run, so no
page waits for a photo that will never come — and once a kept call is done, the cap has room again.
Runs the real server's services in this loop (real database, task queue, image workers)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from boothgate.booth import late as late_module
from boothgate.deadline import Deadline
from boothgate.operator.slot_update import SlotUpdate
from boothgate.providers.base import ProviderResult
from boothgate.runtime import Services
from boothgate.sharing.tokens import new_token
from boothgate.storage.models import Job
from tests.conftest import ScriptedProvider, booth_settings, make_jpeg

BOOTH_SECONDS = 0.3  # each booth's wait: every provider call below is slower
PROVIDER_SECONDS = 1.5


async def slow_provider_call(number: int, calls: list[int]) -> ProviderResult:
    calls.append(number)
    await asyncio.sleep(PROVIDER_SECONDS)
    return ProviderResult(make_jpeg(240, 160, seed=number), "image/jpeg", {"model": "fake"})


async def test_the_33rd_kept_call_is_cancelled_at_its_answer_and_the_32_are_delivered(tmp_path: Path) -> None:
    assert late_module.MAX_KEPT == 32  # the documented figure this test is about
    services = await Services.start(
        booth_settings(tmp_path, public_base_url="http://127.0.0.1:9"), {"gemini": ScriptedProvider}
    )
    try:
        lateness = services.ingest.late
        await services.slots.update("gemini", 1, SlotUpdate(enabled=True, prompt="x", late_result_seconds=120))
        slot = await services.slots.get("gemini", 1)
        assert slot is not None and slot.late_result_seconds == 120
        jobs = []
        for number in range(33):
            job = Job(id=f"cap{number:02d}" + "x" * 8, provider="gemini", slot_number=1, source="booth",
                      status="running", share_token=new_token())  # fmt: skip
            await services.jobs.add(job)
            jobs.append(job)
        calls: list[int] = []
        tasks = [asyncio.create_task(slow_provider_call(n, calls)) for n in range(33)]

        async def booth(number: int) -> str:
            """The booth's side: waits for its provider until its deadline, then a fallback answers it."""
            try:
                await asyncio.wait_for(lateness.keep(jobs[number], slot, tasks[number], Deadline.after(BOOTH_SECONDS)),
                                       BOOTH_SECONDS)  # fmt: skip
            except TimeoutError:
                return "fallback"
            return "provider"

        answers = await asyncio.gather(*(booth(n) for n in range(33)))
        assert answers == ["fallback"] * 33  # every booth was answered on time, by its fallback
        await asyncio.sleep(0)
        assert len(calls) == 33  # each photo's provider was asked once
        assert [t.cancelled() for t in tasks] == [False] * 32 + [True]  # the 33rd call ended with its answer
        assert len(lateness._kept) == 32

        handed = []
        for job in jobs:
            job.status, job.http_status, job.served_by = "succeeded", 200, "local/1"
            handed.append(lateness.hand_on(job))
            await services.jobs.save(job)
        assert handed == [True] * 32 + [False]  # the 33rd claims no late result: its page shows the fallback's
        assert jobs[32].late is None

        # Nothing is lost: each of the 32 kept calls becomes its page's photo, from the same call.
        end = time.monotonic() + 60
        while time.monotonic() < end:
            found = [await services.jobs.get(job.id) for job in jobs]
            states = [((j.late or {}).get("status") if j else None) for j in found]
            if states[:32] == ["delivered"] * 32:
                break
            await asyncio.sleep(0.2)
        assert states == ["delivered"] * 32 + [None], states
        assert all(j is not None and j.late_result_path for j in found[:32])
        assert len(calls) == 33  # nothing was called again
        assert lateness._kept == {}  # the cap has room again once the kept calls are done

        # ... so the next slow call is kept again.
        extra = Job(id="capnext" + "x" * 8, provider="gemini", slot_number=1, source="booth", status="running",
                    share_token=new_token())  # fmt: skip
        await services.jobs.add(extra)
        task = asyncio.create_task(slow_provider_call(99, calls))
        try:
            await asyncio.wait_for(lateness.keep(extra, slot, task, Deadline.after(BOOTH_SECONDS)), BOOTH_SECONDS)
        except TimeoutError:
            pass
        await asyncio.sleep(0)
        assert not task.cancelled() and extra.id in lateness._kept
    finally:
        await services.stop()
