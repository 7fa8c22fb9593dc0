"""Work while the photo arrives: decode a JPEG while its upload is still coming in, when that pays.

On a real network a booth uploads at a few MB/s, so a 10 MB photo takes seconds to arrive; preparing it
only after the last byte adds the whole decode (and any queueing) to the guest's wait. Instead, once the
upload has shown its pace and proven the upload password, a worker process of the `stream` lane decodes
the file while it grows (`boothgate.imaging.growing`; reduced-scale decoding and the structural limits apply as
usual), and the prepared photo is ready a few milliseconds after the last byte.

Bounded: only when a stream worker is free at that moment (never more early decoders than image workers,
each holding one scaled image); only when no photo waits in the image queue (then the CPU is saturated
and an early decode would only reorder the work: a burst over a fast network, or uploads waiting for their
turn to be parsed, booth/turns.py); only when the network sets the upload's pace (it has had to wait
for its next bytes: an upload slowed only by the server's own work gains nothing) and the rest of the
upload is expected to take long enough to pay (over loopback a photo arrives in milliseconds and is
prepared as before); and only for a request that proved the password (a stranger makes us decode
nothing). A decode whose job ends — failed, answered,
timed out — is stopped with its worker process.

Not on Windows: there a file that a worker holds open cannot be renamed into photos/.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from boothgate.booth.link_secrets import query_password
from boothgate.booth.multipart import Upload
from boothgate.booth.turns import Turn
from boothgate.errors import BoothError
from boothgate.imaging import growing
from boothgate.imaging.images import sniff
from boothgate.imaging.pool import Imaging
from boothgate.operator.credentials import Credentials
from boothgate.providers.base import PreparedImage
from boothgate.providers.registry import Registry, UnknownProvider

if TYPE_CHECKING:
    from boothgate.booth.spine import BoothRequest

# Judge the upload's pace after this many photo bytes (the first flush batches).
PROBE_BYTES = 512 * 1024
# Start only when the rest of the upload is expected to take at least this long.
MIN_REMAINING_SECONDS = 0.4
SUPPORTED = sys.platform != "win32"


class EarlyDecode:
    """One upload's early decode: watches the upload's progress, starts the decode when it pays."""

    def __init__(
        self,
        imaging: Imaging,
        path: Path,
        pixels: int | None,
        deadline: float,
        content_length: int | None,
        allowed: Callable[[Upload], bool],
        turn: Turn | None = None,
    ) -> None:
        self.imaging, self.path, self.pixels, self.deadline = imaging, path, pixels, deadline
        self.content_length = content_length
        self.allowed = allowed
        self.turn = turn
        self.task: asyncio.Task[PreparedImage] | None = None
        self._probe: tuple[float, int] | None = None
        self._given_up = not SUPPORTED or pixels is None or content_length is None
        # Until it is admitted, this photo counts as image work to come (the busy estimate of those after it).
        imaging.workers.announce(self, deadline)

    @property
    def started(self) -> bool:
        return self.task is not None

    def progress(self, upload: Upload) -> None:
        """Called after each batch of the photo is on disk."""
        if self._given_up or self.task is not None or upload.path is not None:
            return
        now = time.monotonic()
        if self._probe is None:
            self._probe = (now, upload.body_bytes)
            return
        t0, b0 = self._probe
        if upload.body_bytes - b0 < PROBE_BYTES or now <= t0:
            return
        assert self.content_length is not None and self.pixels is not None
        rate = (upload.body_bytes - b0) / (now - t0)
        if (self.content_length - upload.body_bytes) / rate < MIN_REMAINING_SECONDS:
            self._given_up = True  # fast enough: prepared after the last byte, as usual
            return
        if sniff(upload.head) != "jpeg" or not self.allowed(upload):
            self._given_up = True
            return
        workers = self.imaging.workers
        if self.turn is not None and not self.turn.network_paced:
            return  # its bytes are mostly there at once: the server, not the network, sets the pace
        if workers.queued or (self.turn is not None and self.turn.turns.crowded):
            # the CPU is saturated by photos already here (or still arriving, waiting for their turn to be
            # parsed): decoding early would only reorder work
            return
        if not workers.has_free("stream"):
            return  # maybe a stream worker is free at the next batch
        self.task = asyncio.create_task(self.imaging.prepare_growing(self.path, self.pixels, self.deadline))
        self.task.add_done_callback(_retrieve)

    async def complete(self, size: int) -> None:
        """The upload is complete: tell the decoder how long the file is."""
        if self.task is not None:
            await asyncio.to_thread(growing.mark_end, self.path, size)

    async def take(self, pixels: int) -> PreparedImage | None:
        """The prepared photo, or None when there is no early decode for these pixels (prepare as usual).
        A booth error (a hostile or broken photo) is the photo's answer, exactly as a later decode's."""
        if self.task is None or pixels != self.pixels:
            self.close()
            return None
        try:
            return await self.task
        except BoothError:
            raise
        except Exception:  # e.g. the file was renamed before the worker opened it: prepare as usual
            return None
        finally:
            self._remove_marker()

    def admitted(self) -> None:
        """The photo now queues for its own preparation (or never will): no longer work to come."""
        self.imaging.workers.withdraw(self)

    def close(self) -> None:
        """The job is over (or no longer needs this): stop the decode and its worker process."""
        self.admitted()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self._remove_marker()

    async def aclose(self) -> None:
        """`close`, then wait (briefly) until the decode's worker process has really been ended: the booth's
        answer goes out only after no image work of its job is left running."""
        self.close()
        if self.task is not None and not self.task.done():
            await asyncio.wait({self.task}, timeout=1.0)

    def _remove_marker(self) -> None:
        with contextlib.suppress(OSError):
            growing.end_marker(self.path).unlink(missing_ok=True)


def _retrieve(task: asyncio.Task[PreparedImage]) -> None:
    """A decode nobody awaits any more (its job failed first) must not log 'exception never retrieved'."""
    if not task.cancelled():
        task.exception()


def watch_upload(
    imaging: Imaging,
    registry: Registry,
    credentials: Credentials,
    request: BoothRequest,
    path: Path,
    deadline: float,
    turn: Turn | None = None,
) -> EarlyDecode:
    """An EarlyDecode for a booth request, sized for its tab's provider (known from the URL alone)."""
    pixels = None
    with contextlib.suppress(UnknownProvider):
        provider = registry.get(request.provider)
        pixels = provider.input_pixels() if provider is not None else None

    def allowed(upload: Upload) -> bool:
        if request.source != "booth":
            return True
        return credentials.check_upload(
            upload.form_password or request.header_password or query_password(request.query)
        )

    return EarlyDecode(imaging, path, pixels, deadline, request.content_length, allowed, turn)
