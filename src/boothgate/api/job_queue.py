"""What makes a single client API job finish after a restart that caught it *running*, exactly once.

`api/jobs.py` enqueues every accepted job as a durable task (`work/`, kind `api.job`, key `api-job:<id>`).
A job still queued at a stop simply runs after the restart. One the spine had begun needs three more
things, kept here so the desk stays small:

- **Recovery leaves it alone** (`resumable`): the start-up recovery (records/recovery.py) ends every job row
  left open by a stop as `interrupted` — except the API jobs whose task is still queued or running, which
  the desk runs again from their kept upload, under the same job id (the row is the same row).
- **The provider's answer is kept** (`ProviderAnswers`): the moment a provider answers, its result is
  written under `api/answers/<job id>/` (atomically, before anything else happens to it). The spine's run
  again after the restart finds it there and uses it instead of calling the provider: a call that already
  answered is never made, or billed, twice. A call cut off before it answered is made again (nothing was
  returned, nothing is billed for it). The answers go when the job ends.
- **A stop is not a cancel** (`JobDesk._stopping`): when the server stops, the spine's run of a durable
  job is cut off without recording it as cancelled, so the task (given back by the runner) runs it again.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from boothgate.providers.base import ProviderResult
from boothgate.storage.db import Database
from boothgate.storage.models import Task

KIND = "api.job"
KEY_PREFIX = "api-job:"
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def task_key(job_id: str) -> str:
    return f"{KEY_PREFIX}{job_id}"


async def resumable(db: Database) -> set[str]:
    """The ids of API jobs whose durable task will (still) run them: recovery must not end their rows."""
    async with db.read() as session:
        payloads = (
            await session.scalars(select(Task.payload).where(Task.kind == KIND, Task.state.in_(("queued", "running"))))
        ).all()
    return {str(p["job"]) for p in payloads if isinstance(p, dict) and p.get("job")}


class ProviderAnswers:
    """The provider answers of one job, one per slot that answered (`gemini/1`, a fallback's …)."""

    def __init__(self, root: Path, job_id: str) -> None:
        self.folder = root / "api" / "answers" / _SAFE.sub("", job_id)

    def _files(self, slot: str) -> tuple[Path, Path]:
        name = _SAFE.sub("-", slot)
        return self.folder / f"{name}.bin", self.folder / f"{name}.json"

    async def load(self, slot: str) -> ProviderResult | None:
        return await asyncio.to_thread(self._load, slot)

    async def save(self, slot: str, result: ProviderResult) -> None:
        await asyncio.to_thread(self._save, slot, result)

    async def forget(self) -> None:
        await asyncio.to_thread(shutil.rmtree, self.folder, True)

    def _load(self, slot: str) -> ProviderResult | None:
        data_file, meta_file = self._files(slot)
        try:  # the meta file is written last: without it the answer is incomplete and not used
            meta: dict[str, Any] = json.loads(meta_file.read_text("utf-8"))
            data = data_file.read_bytes()
        except (OSError, ValueError):
            return None
        if len(data) != meta.get("bytes"):
            return None
        return ProviderResult(data, str(meta.get("mime") or "image/png"), dict(meta.get("notes") or {}))

    def _save(self, slot: str, result: ProviderResult) -> None:
        data_file, meta_file = self._files(slot)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {"mime": result.mime, "bytes": len(result.data), "notes": result.notes}
        for target, content in ((data_file, result.data), (meta_file, json.dumps(meta, default=str).encode())):
            part = target.with_suffix(target.suffix + ".part")
            with part.open("wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())  # on disk before a kill can come: the restart relies on it
            part.replace(target)
