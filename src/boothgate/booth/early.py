"""Work while the photo arrives: decode a JPEG while its upload is still coming in, when that pays.

On a real network a booth uploads at a few MB/s, so a 10 MB photo takes seconds to arrive; preparing it
only after the last byte adds the whole decode (and any queueing) to the guest's wait. Instead, once the
upload has shown its pace and proven the upload password, an incremental decoder
(`boothgate.imaging.incremental`: libjpeg fed chunk by chunk at the DCT scale the provider needs, the
structural limits walked on every byte) follows the file as it grows, in a thread, and the prepared photo
is ready a few milliseconds after the last byte.

Bounded by memory, not by cores: each decoder reserves its scaled image and working memory in the
`DecodeBudget` before it allocates, so as many run as the uploads under way while they fit (eight booths
that start together are all decoded as they arrive); one that does not fit is prepared after its last byte
as usual. Only when no photo waits in the image queue (then the CPU is saturated and an early decode would
only reorder the work: a burst over a fast network, or uploads waiting for their turn to be parsed,
booth/turns.py); only when the network sets the upload's pace (it has had to wait for its next bytes: an
upload slowed only by the server's own work gains nothing) and the rest of the upload is expected to take
long enough to pay (over loopback a photo arrives in milliseconds and is prepared as before); and only for
a request that proved the password (a stranger makes us decode nothing). A decode whose job ends —
failed, answered, timed out — is fed nothing more and its memory is given back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from boothgate.booth.multipart import Upload
from boothgate.booth.turns import Turn
from boothgate.errors import BoothError
from boothgate.imaging.images import sniff
from boothgate.imaging.incremental import IncrementalJpeg, NotIncremental
from boothgate.imaging.pool import Imaging
from boothgate.providers.base import PreparedImage
from boothgate.providers.registry import Registry, UnknownProvider

# Judge the upload's pace after this many photo bytes (the first flush batches).
PROBE_BYTES = 512 * 1024
# Start only when the rest of the upload is expected to take at least this long.
MIN_REMAINING_SECONDS = 0.4
# What one feed reads from the growing file: a few milliseconds of libjpeg's work.
CHUNK_BYTES = 256 * 1024
# Not on Windows: there a file that a decoder holds open cannot be renamed into photos/.
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
        self.task: asyncio.Task[PreparedImage | None] | None = None
        self._probe: tuple[float, int] | None = None
        self._given_up = not SUPPORTED or pixels is None or content_length is None
        self._decoder: IncrementalJpeg | None = None
        self._lock = threading.Lock()  # one feed at a time; the decoder is closed only between feeds
        self._more = asyncio.Event()  # more of the photo is on disk (or its size is known)
        self._size: int | None = None
        self._closing: concurrent.futures.Future[None] | None = None
        # Until it is admitted, this photo counts as image work to come (the busy estimate of those after it).
        imaging.workers.announce(self, deadline)

    @property
    def started(self) -> bool:
        return self.task is not None

    def progress(self, upload: Upload) -> None:
        """Called after each batch of the photo is on disk."""
        if self.task is not None:
            self._more.set()
            return
        if self._given_up or upload.path is not None:
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
        if workers.queued or (self.turn is not None and self.turn.turns.backlogged):
            # the CPU is saturated by photos already here (or still arriving, waiting for their turn to be
            # parsed — not booths on a slow network waiting a moment between chunks): decoding early would
            # only reorder work
            return
        imaging = self.imaging
        self._decoder = IncrementalJpeg(self.pixels, imaging.max_source_pixels, imaging.quality, imaging.budget)
        self.task = asyncio.create_task(self._follow())
        self.task.add_done_callback(_retrieve)

    async def _follow(self) -> PreparedImage | None:
        """Feed the decoder what is on disk, wait for more, until the whole photo is fed."""
        loop = asyncio.get_running_loop()
        pool = self.imaging.early_pool
        with self.path.open("rb") as fh:
            async with asyncio.timeout_at(self.deadline):
                while True:
                    self._more.clear()
                    size = self._size
                    await loop.run_in_executor(pool, self._feed, fh, size)
                    if size is not None:
                        return await loop.run_in_executor(pool, self._finish)
                    await self._more.wait()

    def _feed(self, fh: IO[bytes], size: int | None) -> None:
        """In a thread: what has been written since the last feed (up to `size` when the photo is complete)."""
        with self._lock:
            decoder = self._decoder
            if decoder is None:
                raise NotIncremental("stopped")
            while True:
                want = CHUNK_BYTES if size is None else min(CHUNK_BYTES, size - decoder.fed)
                data = fh.read(want) if want > 0 else b""
                if not data:
                    return
                decoder.feed(data)

    def _finish(self) -> PreparedImage:
        with self._lock:
            if self._decoder is None:
                raise NotIncremental("stopped")
            return self._decoder.finish()

    def _stop_decoder(self) -> None:
        with self._lock:
            decoder, self._decoder = self._decoder, None
            if decoder is not None:
                decoder.close()

    async def complete(self, size: int) -> None:
        """The upload is complete: the decoder reads up to its last byte."""
        self._size = size
        self._more.set()

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
        except Exception:  # not a baseline JPEG, over the memory budget, unreadable: prepare as usual
            return None
        finally:
            self.close()

    def admitted(self) -> None:
        """The photo now queues for its own preparation (or never will): no longer work to come."""
        self.imaging.workers.withdraw(self)

    def close(self) -> None:
        """The job is over (or no longer needs this): feed nothing more, give its memory back (in a thread:
        a feed under way finishes its chunk first)."""
        self.admitted()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.task is not None and self._closing is None:
            if self.task.done() and self._lock.acquire(blocking=False):
                # No feed is under way (the decode ended): stopped here, without queueing in the early pool
                # behind other booths' feeds while this booth waits for its answer.
                try:
                    decoder, self._decoder = self._decoder, None
                    if decoder is not None:
                        decoder.close()
                finally:
                    self._lock.release()
                self._closing = concurrent.futures.Future()
                self._closing.set_result(None)
                return
            self._closing = self.imaging.early_pool.submit(self._stop_decoder)

    async def aclose(self) -> None:
        """`close`, then wait (briefly) until the decoder has really stopped: the booth's answer goes out only
        after no image work of its job is left running."""
        self.close()
        if self._closing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wrap_future(self._closing), timeout=1.0)


def _retrieve(task: asyncio.Task[PreparedImage | None]) -> None:
    """A decode nobody awaits any more (its job failed first) must not log 'exception never retrieved'."""
    if not task.cancelled():
        task.exception()


def watch_upload(
    imaging: Imaging,
    registry: Registry,
    provider_name: str,
    content_length: int | None,
    allowed: Callable[[Upload], bool],
    path: Path,
    deadline: float,
    turn: Turn | None = None,
) -> EarlyDecode:
    """An EarlyDecode for an upload to one tab, sized for its provider (known from the URL alone).
    `allowed` says whether the upload has proved the password (nothing is decoded for a stranger)."""
    pixels = None
    with contextlib.suppress(UnknownProvider):
        provider = registry.get(provider_name)
        pixels = provider.input_pixels() if provider is not None else None
    return EarlyDecode(imaging, path, pixels, deadline, content_length, allowed, turn)
