"""Rehearsal: a photo through every enabled slot, for real, before the doors open.

Each slot's run is an ordinary job through the spine (`Ingest.handle` with source "rehearsal": no
upload password, never the stored result of an identical photo), so it proves exactly what a guest's
photo would meet: the key, the billing, the model, the deadline. A few slots run at a time. Rehearsal
jobs are listed with the others, marked, and kept out of the guest statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boothgate.booth.spine import BoothRequest, Ingest
from boothgate.operator.slots import SlotService
from boothgate.providers.registry import Registry, UnknownProvider
from boothgate.records.jobs import JobStore
from boothgate.storage.config import RuntimeConfig
from boothgate.storage.models import Slot

log = logging.getLogger("boothgate.rehearsal")

# A portrait crop of scikit-image's astronaut, enlarged ×3.5: her face is ~390 px wide, so every offline kind
# (face swap refuses faces under 200 px) passes on it, as on a guest's photo at the booth (issue 22).
SAMPLE_PHOTO = Path(__file__).resolve().parent.parent / "samples" / "astronaut-portrait.jpg"
# A slot that used more than this share of the deadline may miss it on a slower day.
SLOW_SHARE = 0.6
# Finished rehearsals kept in memory for the page to read (the jobs themselves are in the database).
KEEP_RUNS = 10


def sample_photo() -> bytes:
    return SAMPLE_PHOTO.read_bytes()


def money(usd: float | None, currency: str, rub_per_usd: float) -> str:
    """A cost as the statistics show it: roubles at the configured rate, or dollars (the CLI's words)."""
    if usd is None:
        return "cost unknown"
    if usd == 0:
        return "free"
    if currency == "rub":
        return f"{usd * rub_per_usd:.2f} ₽"
    return f"${usd:.4f}"


@dataclass
class SlotRun:
    """One slot's part of a rehearsal, as the page and the command line show it."""

    provider: str
    number: int
    name: str
    kind: str
    estimated_cost_usd: float | None
    status: str = "waiting"  # waiting | running | succeeded | failed
    http_status: int | None = None
    seconds: float | None = None
    cost_usd: float | None = None
    job_id: str | None = None
    error: str | None = None
    message: str | None = None
    warning: str | None = None

    @property
    def slot(self) -> str:
        return f"{self.provider}/{self.number}"


@dataclass
class Plan:
    slots: list[SlotRun]

    @property
    def calls(self) -> int:
        return len(self.slots)

    @property
    def free_calls(self) -> int:
        """Slots whose provider says a result costs nothing (the offline tab): no money is spent on them."""
        return sum(1 for s in self.slots if s.estimated_cost_usd == 0)

    @property
    def paid_calls(self) -> int:
        return self.calls - self.free_calls

    @property
    def estimated_cost_usd(self) -> float:
        return round(sum(s.estimated_cost_usd or 0.0 for s in self.slots), 4)

    @property
    def unknown_costs(self) -> int:
        return sum(1 for s in self.slots if s.estimated_cost_usd is None)

    def public(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "free_calls": self.free_calls,
            "paid_calls": self.paid_calls,
            "estimated_cost_usd": self.estimated_cost_usd,
            "unknown_costs": self.unknown_costs,
            "slots": [asdict(s) | {"slot": s.slot} for s in self.slots],
        }


@dataclass
class Run:
    id: str
    tabs: list[str] | None
    photo_name: str
    deadline_seconds: float
    plan: Plan
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    done: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def failed(self) -> int:
        return sum(1 for s in self.plan.slots if s.status == "failed")

    def public(self) -> dict[str, Any]:
        finished = sum(1 for s in self.plan.slots if s.status in ("succeeded", "failed"))
        return {
            "id": self.id,
            "tabs": self.tabs,
            "photo": self.photo_name,
            "started_at": self.started_at.isoformat(),
            "done": self.done,
            "finished": finished,
            "failed": self.failed,
            "deadline_seconds": self.deadline_seconds,
            **self.plan.public(),
        }


def _multipart(photo: bytes, filename: str) -> tuple[str, bytes]:
    """The body a booth would send: the photo in `fileToUpload` (booth-protocol.md)."""
    boundary = f"----boothgate-rehearsal-{secrets.token_hex(8)}"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="fileToUpload"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", head + photo + tail


async def _stream(body: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), chunk):
        yield body[start : start + chunk]


class Rehearsals:
    def __init__(
        self, config: RuntimeConfig, registry: Registry, slots: SlotService, jobs: JobStore, ingest: Ingest
    ) -> None:
        self.config, self.registry, self.slots, self.jobs, self.ingest = config, registry, slots, jobs, ingest
        self._runs: dict[str, Run] = {}

    # --- what it will do --------------------------------------------------------------------
    async def plan(self, tabs: list[str] | None = None) -> Plan:
        """Every enabled slot of the chosen tabs (all when None), with what each is expected to cost."""
        chosen = [t for t in self.registry.tabs if tabs is None or t in tabs]
        runs: list[SlotRun] = []
        for tab in chosen:
            for slot in await self.slots.find(tab):
                if slot.enabled:
                    runs.append(self._slot_run(slot))
        return Plan(runs)

    def _slot_run(self, slot: Slot) -> SlotRun:
        try:
            provider = self.registry.get(slot.provider)
        except UnknownProvider:
            provider = None
        estimate = provider.estimated_cost_usd(dict(slot.options or {})) if provider is not None else None
        return SlotRun(slot.provider, slot.number, slot.name or "", slot.kind, estimate)

    # --- running it -------------------------------------------------------------------------
    async def start(self, photo: bytes, photo_name: str, tabs: list[str] | None = None) -> Run:
        """Plan and start a rehearsal in the background; the caller reads its progress with `get`."""
        run = Run(uuid.uuid4().hex[:12], tabs, photo_name, self.config.settings.deadline_seconds, await self.plan(tabs))
        self._runs[run.id] = run
        for old in list(self._runs)[:-KEEP_RUNS]:
            if self._runs[old].done:
                del self._runs[old]
        run.task = asyncio.create_task(self._run_all(run, photo))
        return run

    async def aclose(self) -> None:
        """At shutdown: stop rehearsals still running (their jobs fail well through the spine)."""
        for run in self._runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.task

    def get(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    async def wait(self, run: Run) -> Run:
        if run.task is not None:
            await asyncio.shield(run.task)
        return run

    async def _run_all(self, run: Run, photo: bytes) -> None:
        gate = asyncio.Semaphore(self.config.settings.rehearsal_concurrency)

        async def one(slot_run: SlotRun) -> None:
            async with gate:
                await self._run_slot(slot_run, photo, run.photo_name)

        try:
            await asyncio.gather(*(one(s) for s in run.plan.slots))
        finally:
            run.done = True
            log.info("rehearsal=%s slots=%d failed=%d", run.id, len(run.plan.slots), run.failed)

    async def _run_slot(self, slot_run: SlotRun, photo: bytes, photo_name: str) -> None:
        slot_run.status = "running"
        content_type, body = _multipart(photo, photo_name)
        started = time.monotonic()
        try:
            answer = await self.ingest.handle(
                BoothRequest(
                    provider=slot_run.provider,
                    number=str(slot_run.number),
                    content_type=content_type,
                    content_length=len(body),
                    header_password=None,
                    body=_stream(body),
                    received_at=started,
                    client="rehearsal",
                    source="rehearsal",
                )
            )
        except Exception as exc:  # the spine answers every failure itself; this is a last resort
            log.exception("rehearsal of %s crashed", slot_run.slot)
            slot_run.status, slot_run.error = "failed", "internal_error"
            slot_run.message = f"Internal error: {type(exc).__name__}."
            slot_run.seconds = round(time.monotonic() - started, 3)
            return
        await self._record(slot_run, answer.status, answer.body, answer.job_id, answer.error, started)

    async def _record(
        self, slot_run: SlotRun, status: int, body: bytes, job_id: str | None, error: str | None, started: float
    ) -> None:
        slot_run.http_status, slot_run.job_id = status, job_id
        job = await self.jobs.get(job_id) if job_id else None
        slot_run.seconds = (
            job.total_seconds if job and job.total_seconds is not None else round(time.monotonic() - started, 3)
        )
        slot_run.cost_usd = job.cost_usd if job else None
        if status == 200 and error is None:
            slot_run.status = "succeeded"
        else:
            slot_run.status = "failed"
            slot_run.error = error or (job.error_code if job else None) or f"http_{status}"
            slot_run.message = (job.message if job else None) or _message(body) or f"HTTP {status}"
        deadline = self.config.settings.deadline_seconds
        if slot_run.seconds is not None and slot_run.seconds > SLOW_SHARE * deadline:
            slot_run.warning = (
                f"took {slot_run.seconds:.1f} s of the {deadline:g} s deadline (over {SLOW_SHARE:.0%}): "
                "a slower moment at the event may miss it"
            )


def _message(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return str(data.get("message")) if isinstance(data, dict) and data.get("message") else None
