"""The trash's size budget: when trash/ holds more than `trash_max_bytes`, the oldest entries go first.

Trash is where failed originals wait for the operator; it must not be a way to fill the disk. The
budget is checked every few seconds from a running count of what was added (no folder walk per job);
when it is exceeded, the folder is measured for real and the oldest entries (original and sidecar of
one job together) are removed until it is back under 90 % of the budget. Their jobs forget the path,
and Statistics shows a warning with what was removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from boothgate.settings import Settings
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Job

log = logging.getLogger("boothgate.trash")

CHECK_EVERY_SECONDS = 2.0
REMEASURE_EVERY_SECONDS = 300.0
LOW_WATER = 0.9  # after removing, the trash is at most this share of its budget
WARN_SHARE = 0.8


@dataclass
class _Entry:
    day: str
    mtime: float
    job_id: str
    files: list[Path]
    size: int


def _entries(trash: Path) -> list[_Entry]:
    """Trash entries oldest first: by day folder, then by time; a job's original and sidecar together."""
    grouped: dict[tuple[str, str], _Entry] = {}
    for path in trash.glob("*/*"):
        try:
            stat = path.stat()
        except OSError:
            continue
        if not path.is_file():
            continue
        key = (path.parent.name, path.name.split(".", 1)[0])
        entry = grouped.setdefault(key, _Entry(key[0], stat.st_mtime, key[1], [], 0))
        entry.files.append(path)
        entry.size += stat.st_size
        entry.mtime = min(entry.mtime, stat.st_mtime)
    # Record-only entries (a sidecar without an original: mostly requests that never proved the password)
    # go first, oldest first; then entries with an original. A stranger's records never push a guest's
    # failed original out (issue 31, class 11).
    return sorted(grouped.values(), key=lambda e: (not _record_only(e), e.day, e.mtime))


def _record_only(entry: _Entry) -> bool:
    return all(path.suffix == ".json" for path in entry.files)


def measure(trash: Path) -> int:
    return sum(e.size for e in _entries(trash))


def remove_oldest(trash: Path, max_bytes: int) -> tuple[int, list[str], int]:
    """Remove the oldest entries until the trash is under LOW_WATER × max_bytes.
    Returns (bytes now, job ids removed, bytes removed)."""
    entries = _entries(trash)
    used = sum(e.size for e in entries)
    removed: list[str] = []
    freed = 0
    target = int(max_bytes * LOW_WATER)
    for entry in entries:
        if used <= target:
            break
        for path in entry.files:
            path.unlink(missing_ok=True)
        used -= entry.size
        freed += entry.size
        removed.append(entry.job_id)
    return used, removed, freed


class TrashBudget:
    def __init__(self, media: MediaStore, db: Database, settings: Callable[[], Settings]) -> None:
        self.media, self.db, self.settings = media, db, settings
        self.used = 0
        self.removed_entries = 0
        self.removed_bytes = 0
        self.last_removed_at: str | None = None
        self._counted = 0  # media.trash_bytes_added already in `used`
        self._measured_at = 0.0

    @property
    def trash(self) -> Path:
        return self.media.root / "trash"

    async def remeasure(self) -> None:
        self._counted = self.media.trash_bytes_added
        self.used = await asyncio.to_thread(measure, self.trash)
        self._measured_at = asyncio.get_running_loop().time()

    async def check(self) -> int:
        """Count what was added; over the budget, remove the oldest entries. Returns entries removed."""
        added = self.media.trash_bytes_added - self._counted
        self._counted += added
        self.used += added
        if asyncio.get_running_loop().time() - self._measured_at > REMEASURE_EVERY_SECONDS:
            await self.remeasure()
        budget = self.settings().trash_max_bytes
        if self.used <= budget:
            return 0
        await self.remeasure()
        if self.used <= budget:
            return 0
        self.used, removed, freed = await asyncio.to_thread(remove_oldest, self.trash, budget)
        if not removed:
            return 0
        self.removed_entries += len(removed)
        self.removed_bytes += freed
        self.last_removed_at = datetime.now(UTC).isoformat()
        log.warning("trash over its budget of %d bytes: removed the %d oldest entries", budget, len(removed))
        await self._forget(removed)
        return len(removed)

    async def _forget(self, job_ids: list[str]) -> None:
        """Jobs whose trashed original is gone no longer point at it (best effort: the API checks files)."""
        try:
            for start in range(0, len(job_ids), 500):
                async with self.db.write(timeout=5.0) as session:
                    chunk = job_ids[start : start + 500]
                    await session.execute(update(Job).where(Job.id.in_(chunk)).values(trash_path=None))
        except Exception:
            log.warning("could not clear the trash paths of removed entries", exc_info=True)

    async def run_forever(self) -> None:
        await self.remeasure()
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("trash budget check failed")
            await asyncio.sleep(CHECK_EVERY_SECONDS)

    def public(self) -> dict[str, Any]:
        budget = self.settings().trash_max_bytes
        warning = None
        if self.removed_entries:
            warning = "trash_over_budget"
        elif self.used >= budget * WARN_SHARE:
            warning = "trash_nearly_full"
        return {
            "bytes": self.used,
            "max_bytes": budget,
            "removed_entries": self.removed_entries,
            "removed_bytes": self.removed_bytes,
            "last_removed_at": self.last_removed_at,
            "warning": warning,
        }
