"""The one streaming ZIP writer: the event export (records/export.py) and the guest gallery's download
(sharing/galleries.py) both write through it.

The standard library's `zipfile` writes into a small unseekable sink (so each entry carries a data
descriptor and nothing is rewound); the caller takes the bytes out as they come and hands them to the
response. Nothing is built in memory or copied to a temporary file. Entries are stored, not deflated:
JPEG/PNG do not shrink.
"""

from __future__ import annotations

import time
import zipfile
from typing import IO

CHUNK = 256 * 1024  # bytes read from a file at a time, and handed on at a time
ZIP64_FROM = 2**31  # an entry this large needs ZIP64 sizes (known in advance: no rewinding)


class _Sink:
    """A write-only, non-seekable file for zipfile that hands its bytes on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        return data


class ZipStream:
    """A ZIP written piece by piece: `open` an entry, write to it, `take` what is ready, `close` at the end."""

    def __init__(self) -> None:
        self._sink = _Sink()
        self._archive = zipfile.ZipFile(self._sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)  # type: ignore[call-overload]

    def open(self, name: str, date_time: tuple[int, ...] | None = None, size: int = 0) -> IO[bytes]:
        """A new stored entry to write into (`size`: the bytes it will hold, when known: ZIP64 if large)."""
        stamp = tuple(date_time or time.localtime()[:6])[:6]
        info = zipfile.ZipInfo(name, date_time=stamp)  # type: ignore[arg-type]
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return self._archive.open(info, "w", force_zip64=size >= ZIP64_FROM)

    def take(self, at_least: int = CHUNK) -> bytes:
        """The bytes written so far when there are `at_least` of them (else b"": keep writing)."""
        return self._sink.take() if self._sink.size >= max(1, at_least) else b""

    def close(self) -> bytes:
        """The end of the archive (central directory) and whatever was still pending."""
        self._archive.close()
        return self._sink.take()
