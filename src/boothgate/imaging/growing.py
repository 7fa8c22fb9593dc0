"""A photo file that is still being written by its upload, read by a decoder as its bytes arrive.

The upload (`booth/multipart.py`) appends to the file in batches; a worker process decodes it at the
same time (`images.prepare_growing`). Reads past the bytes written so far wait until more arrive, or until
the end marker says how long the file is (the upload is complete) — or that it never will be. The
structural limits (`imagecheck`) are checked on every new byte, so a hostile photo is refused while it
is still arriving.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from boothgate.errors import CorruptImage
from boothgate.imaging.imagecheck import Walker, walker_for

# How often a waiting read looks for new bytes: the decode follows the upload at most this far behind.
POLL_SECONDS = 0.01
ABORTED = "aborted"


def end_marker(path: Path) -> Path:
    """Where the upload writes the photo's final size (or "aborted") once it knows it."""
    return path.with_name(path.name + ".end")


def mark_end(path: Path, size: int | None) -> None:
    """Written by the upload side: the file is complete with `size` bytes, or (None) will not be."""
    marker = end_marker(path)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(ABORTED if size is None else str(size))
    tmp.replace(marker)  # the reader sees the whole value or nothing


class GrowingFile(io.RawIOBase):
    """Read-only, seekable view of a file that grows until its end marker appears."""

    def __init__(self, path: Path, deadline: float, max_pixels: int) -> None:
        super().__init__()
        self.path = path
        self.deadline = deadline
        self.max_pixels = max_pixels
        self._fh = path.open("rb")
        self._size: int | None = None
        self._checked = 0  # bytes fed to the walker so far
        self._walker: Walker | None = None
        self._pending = b""  # the first bytes, until there are enough to tell the type

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._fh.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset, whence = self._wait_for_size() + offset, io.SEEK_SET
        return self._fh.seek(offset, whence)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            start = self._fh.tell()
            n = self._fh.readinto(buffer)
            if n:
                self._check(start, bytes(buffer[:n]))
                return n
            size = self._final_size()
            if size is not None and start >= size:
                if self._walker is not None and self._checked >= size:
                    self._walker.finish()
                return 0
            if time.monotonic() > self.deadline:
                raise TimeoutError("the upload did not complete before the deadline")
            time.sleep(POLL_SECONDS)

    def _check(self, start: int, data: bytes) -> None:
        """Feed bytes not seen before to the structural walker (the decoder re-reads the header)."""
        end = start + len(data)
        if end <= self._checked or start > self._checked:
            return
        fresh = data[self._checked - start :]
        self._checked = end
        if self._walker is None:
            self._pending += fresh
            if len(self._pending) < 16:
                return
            self._walker = walker_for(self._pending[:16], self.max_pixels) or _Nothing(self.max_pixels)
            fresh, self._pending = self._pending, b""
        self._walker.feed(fresh)

    def _final_size(self) -> int | None:
        if self._size is None:
            try:
                text = end_marker(self.path).read_text()
            except OSError:
                return None
            if text == ABORTED:
                raise CorruptImage("The upload ended before the photo was complete.")
            self._size = int(text)
        return self._size

    def _wait_for_size(self) -> int:
        while (size := self._final_size()) is None:
            if time.monotonic() > self.deadline:
                raise TimeoutError("the upload did not complete before the deadline")
            time.sleep(POLL_SECONDS)
        return size

    def close(self) -> None:
        self._fh.close()
        super().close()


class _Nothing(Walker):
    """Types without structural limits (WEBP): nothing to walk."""

    def feed(self, data: bytes) -> None:
        return
