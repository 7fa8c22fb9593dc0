"""Admission under load: a new photo that cannot be finished before its deadline is answered at once.

Under a burst bigger than the machine, waiting is worse than refusing: the booth would get its 504 at the
very end of its wait (or, with every core busy, after it). So before a photo is queued, the expected time
to finish it — the image work queued ahead of it (earliest deadline first: only work due earlier), its own
preparation, and the provider's recent pace — is compared with the time left. When it does not fit, the
booth is answered now: 503 `busy` with a Retry-After, or the slot's `on_failure` (the guest's own photo).
The same holds after admission: a photo still waiting for a worker when only the provider's time is left
is answered busy then, instead of 504 at the very end.

`busy` is for a full queue of image work only (issue 31, class 13): with nothing queued ahead, a photo is
always admitted. A slow provider is the hedge's and the fallback's business, and one call is not a
forecast: the provider's pace is the median of the slot's recent *successful* calls, so a call that hung
to the deadline (or failed at once) changes nothing.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from pathlib import Path

from boothgate.booth.early import EarlyDecode
from boothgate.deadline import Deadline
from boothgate.errors import BoothError
from boothgate.imaging.pool import Imaging
from boothgate.imaging.prepared import PreparedImage
from boothgate.imaging.workers import ImageWorkers
from boothgate.storage.models import Slot

# A slot's provider pace: the median of its last few successful call times (seconds). Per slot, not per
# tab: the slot's kind, prompt and model decide how long a call takes. A median of five: one odd call moves
# it not at all.
PACE_RUNS = 5
# A pace older than this is forgotten: with no more calls it could never change again.
PACE_TTL_SECONDS = 30.0
# Time kept free for storing and answering after the provider (the spine's answer margin and the finish).
FINISH_SECONDS = 0.5


class Busy(BoothError):
    status, code = 503, "busy"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class Capacity:
    def __init__(self, workers: ImageWorkers) -> None:
        self.workers = workers
        self._pace: dict[tuple[str, int], deque[tuple[float, float]]] = {}  # slot: (seconds, when recorded)

    def record(self, slot: Slot, seconds: float | None, succeeded: bool = True) -> None:
        """A provider call of `slot` ended after `seconds`. Only a success says how long a call takes: a
        call cut by the deadline or failed says nothing about the next one (the hedge handles slowness)."""
        if seconds is None or not succeeded:
            return
        runs = self._pace.setdefault((slot.provider, slot.number), deque(maxlen=PACE_RUNS))
        runs.append((seconds, time.monotonic()))

    def pace(self, slot: Slot) -> float:
        now = time.monotonic()
        recent = [
            seconds
            for seconds, when in self._pace.get((slot.provider, slot.number), ())
            if now - when <= PACE_TTL_SECONDS
        ]
        return statistics.median(recent) if recent else 0.0

    def check(self, slot: Slot, deadline: Deadline, early: EarlyDecode | None = None) -> None:
        """Raise Busy when a photo admitted now would not be answered before `deadline`. A photo already
        decoded while it arrived (`early`) does not wait in the image queue."""
        if early is not None:
            early.admitted()
        prepared = early is not None and early.started
        if prepared or self.workers.waiting_ahead(deadline.at) == 0:
            return  # nothing waits ahead for the image workers: busy is for a full queue only
        queue = self.workers.expected_wait(deadline.at)
        needed = queue + self.pace(slot) + FINISH_SECONDS
        left = deadline.remaining()
        if needed <= left:
            return
        raise Busy(
            f"The server is busy: this photo would need about {needed:.0f} s "
            f"(image queue {queue:.1f} s, provider {self.pace(slot):.1f} s) and {left:.0f} s are left.",
            retry_after=max(queue, 1.0),
        )

    async def prepare(self, imaging: Imaging, slot: Slot, deadline: Deadline, path: Path, pixels: int) -> PreparedImage:
        """Prepare an admitted photo, but only while the provider can still finish after it: a photo still
        waiting for a worker when that moment passes is answered busy at once, not 504 at the deadline."""
        due = deadline.at - self.pace(slot) - FINISH_SECONDS
        try:
            return await imaging.prepare(path, pixels, due, admitted=True)
        except TimeoutError:
            raise Busy(
                "The server is busy: this photo could not be prepared in time for the provider.",
                retry_after=self.workers.expected_wait(deadline.at),
            ) from None
