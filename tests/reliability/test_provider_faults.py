"""Network faults on every real provider tab: the real provider module and its SDK against the tab's
wire-format fake, behind a FaultGate (tests/fakes/faults.py) that resets, stalls, truncates, answers a
proxy's HTML page or drips the answer one byte at a time — whichever the slot's prompt asks for.

Per tab, one burst of every fault at once (plus a clean photo), on one server per tab:
- each booth gets the status and error code of `EXPECTED`, and the fault really happened on the wire;
- the server's own recorded time for every job is inside the deadline (booth-side: deadline + 1 s);
- the statistics equal the answers; every failed original is byte-identical in trash with its sidecar.

The offline tab has no wire: its burst is clean photos only, and it must serve them all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import REAL_TABS, Tab, running_tab
from tests.fakes.faults import DRIP_SECONDS, FAULTS, marker
from tests.gemini_support import PHOTO_TINT, encode, gradient
from tests.reliability.test_faults import _assert_books_match, _assert_failed_originals_in_trash, _journal_drained

pytestmark = pytest.mark.slow

DEADLINE = 4.0  # DeepSeek's 1 s stage plus a Gemini render must fit, as in test_deepseek_gemini.py
OK = (200, None)
GAVE_UP = (502, "provider_unavailable")  # retried while time remained, then "no time left for another try"
LATE = (504, "deadline")
# What the booth gets for each fault, per tab, from the real provider modules. A stalled or dripping answer
# is cut at the deadline. A reset, a truncated answer or a proxy's HTML 502 is retried while time remains:
# Gemini, OpenAI and fal then stop with time to spare ("no time left for another try"); Turbotext retries
# until the deadline itself. DeepSeek only writes the instruction: when it fails in any way, Gemini renders
# the slot's own template and the guest still gets a print. The markers name the tab's own gate: the prompt
# DeepSeek falls back to carries the marker on to the renderer, whose gate lets it pass (the fault on both
# calls is its own test below).
FAULT_WORDS = {
    "pass": "none (the fake's normal answer)",
    "reset": "TCP RST after the request",
    "stall": "request read, never answered",
    "truncated": "real answer, half its body, then close",
    "html": "a proxy's `502 Bad Gateway` HTML page",
    "drip": f"real answer, a byte at a time over {DRIP_SECONDS:g} s",
}
CLOUD = {"pass": OK, "reset": GAVE_UP, "stall": LATE, "truncated": GAVE_UP, "html": GAVE_UP, "drip": LATE}
EXPECTED: dict[str, dict[str, tuple[int, str | None]]] = {
    "gemini": CLOUD,
    "openai": CLOUD,
    "fal": CLOUD,
    "turbotext": {**CLOUD, "reset": LATE, "truncated": LATE, "html": LATE},
    "deepseek": {"pass": OK, **dict.fromkeys(FAULTS, OK)},
    "local": {"pass": OK},
}


@pytest.fixture(scope="module", params=REAL_TABS)
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tab]:
    name: str = request.param
    with running_tab(name, tmp_path_factory.mktemp(f"faults-{name}"), deadline_seconds=DEADLINE) as tab:
        yield tab


_seed = iter(range(1, 100_000))


def photo() -> bytes:
    """A small photo of its own (distinct bytes: no duplicate reuse), big enough for every tab."""
    tint = tuple(max(0, c - next(_seed) % 11) for c in PHOTO_TINT)
    return encode(gradient(480, 360, tint))  # type: ignore[arg-type]


async def test_every_fault_on_the_wire_gets_its_answer_in_time(rig: Tab) -> None:
    rig.reset()
    booth = rig.booth
    cases = list(EXPECTED[rig.name])
    for number, fault in enumerate(cases, start=1):
        prompt = "portrait of the guests" if fault == "pass" else f"portrait of the guests {marker(fault, rig.name)}"
        await booth.configure(rig.name, number, kind="prompt", prompt=prompt)
    photos = [photo() for _ in cases]

    async def one(i: int) -> tuple[Any, float]:
        started = time.monotonic()
        answer = await booth.post(rig.name, i + 1, photos[i], timeout=DEADLINE + 5)
        return answer, time.monotonic() - started

    results = await asyncio.gather(*(one(i) for i in range(len(cases))))

    wrong = []
    for i, (fault, (answer, seconds)) in enumerate(zip(cases, results, strict=True)):
        got = (answer.status, answer.json().get("error") if answer.status != 200 else None)
        if got != EXPECTED[rig.name][fault]:
            wrong.append(f"{rig.name}/{i + 1} {fault}: got {got}, {answer.body[:160]!r}")
        assert seconds <= DEADLINE + 1.0, f"{rig.name} {fault}: the booth waited {seconds:.2f} s"
    assert not wrong, "\n".join(wrong)
    if rig.gate is not None:
        assert set(rig.gate.seen) >= set(cases), f"every fault must have happened on the wire: {rig.gate.seen}"

    await _journal_drained(booth)
    async with httpx.AsyncClient(base_url=booth.url, auth=booth.api().auth) as client:
        for fault, (answer, _) in zip(cases, results, strict=True):
            job = (await client.get(f"/api/jobs/{answer.headers.get('x-job-id') or answer.json()['job_id']}")).json()
            assert job["total_seconds"] <= DEADLINE, f"{rig.name} {fault}: recorded {job['total_seconds']} s"
            if rig.name == "deepseek":  # the guest's print came from the slot's own prompt, not a lucky write
                expected = "written" if fault == "pass" else "fallback"
                assert job["provider_notes"]["deepseek"]["status"] == expected, (fault, job["provider_notes"])
    if rig.renderer_gate is not None:
        assert set(rig.renderer_gate.seen) == {"pass"}, (
            f"a fault meant for DeepSeek hit its renderer: {rig.renderer_gate.seen}"
        )
    plan = [(rig.name, n, *EXPECTED[rig.name][fault]) for n, fault in enumerate(cases, start=1)]
    stats = await booth.stats()
    _assert_books_match({"providers": {rig.name: stats["providers"][rig.name]}}, plan, results, tabs=(rig.name,))
    _assert_failed_originals_in_trash(booth, photos, results, at_least=sum(EXPECTED[rig.name][f] != OK for f in cases))


@pytest.mark.parametrize("rig", ["deepseek"], indirect=True)  # the one tab that hands its prompt on
async def test_a_fault_on_both_deepseek_and_its_renderer_is_the_renderers_answer(rig: Tab) -> None:
    """An unaddressed marker in the slot's prompt hits DeepSeek's call and, through the prompt DeepSeek falls
    back to, the Gemini render too: the booth gets Gemini's 502 in time, with the original in trash."""
    rig.reset()
    booth = rig.booth
    await booth.configure("deepseek", 10, kind="prompt", prompt=f"portrait of the guests {marker('reset')}")
    sent = photo()
    answer = await booth.post("deepseek", 10, sent, timeout=DEADLINE + 5)
    assert (answer.status, answer.json()["error"]) == GAVE_UP, answer.body[:300]
    assert rig.gate.seen and set(rig.gate.seen) == {"reset"}
    assert rig.renderer_gate.seen and set(rig.renderer_gate.seen) == {"reset"}
    await _journal_drained(booth)
    async with httpx.AsyncClient(base_url=booth.url, auth=booth.api().auth) as client:
        job = (await client.get(f"/api/jobs/{answer.json()['job_id']}")).json()
    assert job["provider_notes"]["deepseek"]["status"] == "fallback"
    assert job["total_seconds"] <= DEADLINE and job["in_trash"]
    _assert_failed_originals_in_trash(booth, [sent], [(answer, 0.0)], at_least=1)
