"""The identical photo on another node (issue 27): several nodes behind a load balancer share one PostgreSQL,
so a booth resending a photo after a timeout may reach another node than the one still running it.

Each node records a job's row (status `running`, the photo's SHA-256, slot, slot revision and filled prompt)
before its provider call. Then, under a PostgreSQL advisory lock of the photo's key (records/jobs.py
`join_twin`: the nodes decide one after the other), a job that finds a running twin waiting for nobody
marks itself as waiting for that one; a job that finds none runs, and later twins wait for it. So of any
number of identical posts exactly one calls the provider. The waiting job reads the runner's status every
quarter second: succeeded → its stored result (the shared bucket) answers this booth too, with no second
provider call; failed or gone → this job stops waiting and runs itself; out of time → the booth gets the
deadline answer, as a local join does.

On one node (SQLite) the provider-call step's in-memory single-flight does this already; this step is skipped.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from boothgate import errors
from boothgate.booth.booth_job import BoothJob
from boothgate.records.jobs import JobStore
from boothgate.storage.models import Job

POLL_SECONDS = 0.25


async def twin_to_wait_for(jobs: JobStore, job: BoothJob, window_seconds: float) -> Job | None:
    """The running twin this job now waits for (marked so in the database), or None: this job runs."""
    record = job.record
    if record.photo_sha256 is None or record.slot_number is None:
        return None
    twin = await jobs.join_twin(record, timedelta(seconds=window_seconds))
    if twin is not None:
        record.reused_from = twin.id
    return twin


async def wait_for(jobs: JobStore, twin: Job, job: BoothJob, margin_seconds: float) -> Job | None:
    """The twin's succeeded row once it has its result; None when it failed (this job then runs itself).
    Raises DeadlineReached when this booth's time is up first."""
    while job.deadline.remaining() > margin_seconds:
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, job.deadline.remaining() - margin_seconds)))
        current = await jobs.get(twin.id)
        if current is None or current.status not in ("received", "running", "queued"):
            if current is not None and current.status == "succeeded" and current.result_path:
                return current
            job.record.reused_from = None
            await jobs.stop_waiting(job.record.id)
            return None
    raise errors.DeadlineReached("The identical photo sent to another node ran out of time.")
