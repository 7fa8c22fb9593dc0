"""An API job as its client sees it: the stages, the live progress of a running job (pushed to listeners:
Server-Sent Events in `web/v1.py`), and the job's public view built from its row and that progress.

Stages, in order: `queued` → `preparing` (received, admitted, decoded) → `at_provider` → `shaping` (result
fitted, checked, stored) → `succeeded` | `failed` | `cancelled`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from boothgate.booth.booth_job import Answer
from boothgate.operator.api_keys import Caller
from boothgate.storage.models import Job

STAGES = ("queued", "preparing", "at_provider", "shaping", "succeeded", "failed", "cancelled")
FINAL = frozenset({"succeeded", "failed", "cancelled"})
# The spine's steps (booth/spine.py) in the client's words.
SPINE_STAGES = {
    "receive": "preparing",
    "admit": "preparing",
    "prepare": "preparing",
    "provider": "at_provider",
    "finish": "shaping",
    "moderate": "shaping",
}
PROGRESS = {"queued": 0, "preparing": 10, "at_provider": 30, "shaping": 85}


class ApiError(Exception):
    """A client error answered before a job exists: status, stable code, message, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass(eq=False)
class LiveJob:
    id: str
    caller: Caller
    provider: str
    number: int
    created_at: datetime
    batch_id: str | None = None
    stage: str = "queued"
    progress: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    answer: Answer | None = None
    task: asyncio.Task[Answer] | None = None
    cancel_requested: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def done(self) -> bool:
        return self.stage in FINAL

    def enter(self, stage: str) -> None:
        if stage == self.stage or self.done:
            return
        self.stage = stage
        self.progress = 100 if stage in FINAL else max(self.progress, PROGRESS.get(stage, self.progress))
        self.events.append(
            {"stage": stage, "progress": self.progress, "at": datetime.now(UTC).isoformat(), "seq": len(self.events)}
        )
        self._changed.set()
        self._changed = asyncio.Event()

    async def changes(self, since: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Every event from `since` on, then each new one, until the job is final."""
        seen = since
        while True:
            while seen < len(self.events):
                yield self.events[seen]
                seen += 1
            if self.done:
                return
            await self._changed.wait()


def public_stage(job: Job) -> str:
    if job.status in ("succeeded", "cancelled"):
        return job.status
    if job.status in ("failed", "timed_out", "rejected", "moderated"):
        return "failed"
    return "preparing"


def _message(answer: Answer) -> str | None:
    if answer.media_type != "application/json":
        return None
    try:
        body = json.loads(answer.body)
    except ValueError:
        return None
    return str(body.get("message")) if isinstance(body, dict) and body.get("message") else None


def live_view(live: LiveJob) -> dict[str, Any]:
    base = f"/api/v1/jobs/{live.id}"
    answer = live.answer
    return {
        "id": live.id,
        "slot": f"{live.provider}/{live.number}",
        "status": live.stage,
        "progress": live.progress,
        "created_at": live.created_at.isoformat(),
        "finished_at": None,
        "error": answer.error if answer is not None and live.stage != "succeeded" else None,
        "message": _message(answer) if answer is not None else None,
        "http_status": answer.status if answer is not None else None,
        "timings": {},
        "cost_usd": None,
        "served_by": None,
        "batch_id": live.batch_id,
        "status_url": base,
        "result_url": f"{base}/result",
        "events_url": f"{base}/events",
    }


def public_job(job: Job, live: LiveJob | None = None) -> dict[str, Any]:
    """An API job as its key sees it: stage, progress, error in the booth's words, timings and cost."""
    stage = live.stage if live is not None else public_stage(job)
    if live is not None and not live.done and job.status not in ("received", "running"):
        stage = public_stage(job)
    elif live is None and job.status in ("received", "running"):
        stage = "preparing"
    base = f"/api/v1/jobs/{job.id}"
    error, message, http_status = job.error_code, job.message, job.http_status
    if live is not None and live.answer is not None and job.status in ("received", "running"):
        # The answer is out but its row is still on its way (a busy database sends it via the journal).
        error, message, http_status = live.answer.error, _message(live.answer), live.answer.status
    return {
        "id": job.id,
        "slot": f"{job.provider}/{job.slot_number}",
        "status": stage,
        "progress": 100 if stage in FINAL else (live.progress if live is not None else 0),
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "error": error if stage != "succeeded" else None,
        "message": message if stage != "succeeded" else None,
        "http_status": http_status,
        "timings": job.timings or {},
        "cost_usd": job.cost_usd,
        "served_by": job.served_by,
        "batch_id": job.batch_id,
        "status_url": base,
        "result_url": f"{base}/result",
        "events_url": f"{base}/events",
    }
