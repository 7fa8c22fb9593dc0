"""Cheap structural limits, checked before (and while) an image is decoded.

A photo can declare a legal size and still cost minutes of CPU or gigabytes of memory in a decoder:
a progressive JPEG of thousands of (empty) scans, a PNG of millions of tiny chunks, a progressive JPEG
whose coefficient buffer (always full size: reduced-scale decoding does not shrink it) is hundreds of
megabytes, a header that declares far more pixels than its bytes can hold. Walking the file's structure
costs a few milliseconds (segment lengths are skipped, entropy-coded data is searched in C), so each of
these is refused with a clear 422/413 before a decoder sees it.

The walkers are streaming (`feed` as bytes arrive, `finish` at the end), so the same limits hold for a
photo decoded while its upload is still arriving (`boothgate.imaging.incremental`).
"""

from __future__ import annotations

import math
import os
import re
import struct
from pathlib import Path

from boothgate.errors import CorruptImage, TooLarge

# Ordinary progressive JPEGs have about 10 scans (libjpeg's default script; mozjpeg and Photoshop up to ~20).
# Every scan walks all blocks of the image, so scan count multiplies decode time.
MAX_JPEG_SCANS = 64
# A progressive decode keeps every DCT coefficient of the full-size image (2 bytes × 64 per 8×8 block), at any
# output scale. 160 MB admits progressive photos up to ~50 MP at 4:2:0 or 24 MP at 4:4:4 (a 24 MP 4:2:0 one
# needs 72 MB); a 10000×10000 one (300 MB in colour, 200 MB in grey) is refused.
PROGRESSIVE_BUDGET_BYTES = 160 * 1024 * 1024
# PNG: ordinary encoders write IDAT chunks of 8–64 kB. Allowed: 1024 chunks plus one per 4 kB of file.
PNG_CHUNKS_BASE = 1024
PNG_BYTES_PER_CHUNK = 4096
# Deflate cannot expand data by more than 1032:1, so IDAT bytes × 1032 bound the raw pixel bytes.
DEFLATE_MAX_RATIO = 1032
# Huffman-coded sequential JPEG: every 8×8 block costs at least 2 bits (a DC code and an end-of-block code).
MIN_BITS_PER_BLOCK = 2

# In entropy-coded data, 0xFF is followed by 0x00 (stuffing), a restart marker (D0–D7) or fill (FF);
# anything else ends the scan.
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_HUFFMAN_SEQUENTIAL = frozenset({0xC0, 0xC1})
_SOS, _SOI, _EOI = 0xDA, 0xD8, 0xD9
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class Walker:
    """Follows an image's structure as bytes arrive; raises a booth error when a limit is crossed."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self.buf = bytearray()
        self.skip = 0  # payload bytes to pass over without keeping them
        self.seen = 0
        self.done = False

    def feed(self, data: bytes) -> None:
        self.seen += len(data)
        if self.done:
            return
        if self.skip >= len(data):
            self.skip -= len(data)
            return
        self.buf += data[self.skip :] if self.skip else data
        self.skip = 0
        used = self._walk()
        del self.buf[:used]

    def _walk(self) -> int:
        raise NotImplementedError

    def finish(self) -> None:
        """The whole file has been fed."""

    def _too_many_pixels(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise TooLarge(
                f"The image is {width}×{height} pixels; at most {self.max_pixels:,} pixels are accepted.",
                code="image_too_large",
            )


class JpegWalker(Walker):
    def __init__(self, max_pixels: int) -> None:
        super().__init__(max_pixels)
        self.state = "marker"  # marker | entropy
        self.scans = 0
        self.blocks = 0
        self.sequential = False
        self.components = 0
        self.entropy_bytes = 0
        self.single_scan_at: int | None = None  # where the one scan of a single-pass JPEG begins

    def _walk(self) -> int:
        buf, pos = self.buf, 0
        while not self.done:
            if self.skip:
                step = min(self.skip, len(buf) - pos)
                pos += step
                self.skip -= step
                if self.skip:
                    return pos
            if self.state == "entropy":
                found = _MARKER.search(buf, pos)
                end = found.start() if found else max(pos, len(buf) - 1)  # a last 0xFF may start a marker
                self.entropy_bytes += end - pos
                pos = end
                if found is None:
                    return pos
                self.state = "marker"
            if len(buf) - pos < 2:
                return pos
            if buf[pos] != 0xFF:
                raise CorruptImage("The JPEG's structure is broken (a segment does not start with a marker).")
            code = buf[pos + 1]
            if code == 0xFF:  # fill byte before a marker
                pos += 1
                continue
            if code == _SOI or 0xD0 <= code <= 0xD7 or code == 0x01:
                pos += 2
                continue
            if code == _EOI:
                self.done = True
                return pos + 2
            if len(buf) - pos < 4:
                return pos
            length = struct.unpack_from(">H", buf, pos + 2)[0]
            if length < 2:
                raise CorruptImage("The JPEG's structure is broken (a segment of negative length).")
            if code in _SOF or code == _SOS:
                if len(buf) - pos < 2 + length:
                    return pos  # wait for the whole (small) segment
                payload = bytes(buf[pos + 4 : pos + 2 + length])
                pos += 2 + length
                if code == _SOS:
                    self._scan()
                    if self.scans == 1 and self.sequential and payload[:1] == bytes([self.components]):
                        # One interleaved scan of a baseline JPEG: libjpeg decodes it in a single pass and
                        # refuses a second scan, so its cost is bounded by the frame already checked. Its
                        # entropy-coded bytes need no walk: they are the rest of the file (see `finish`).
                        self.single_scan_at = self.seen - (len(buf) - pos)
                        self.done = True
                        return pos
                else:
                    self._frame(code, payload)
                continue
            pos += 4
            self.skip = length - 2
        return pos

    def _frame(self, code: int, payload: bytes) -> None:
        if len(payload) < 6:
            raise CorruptImage("The JPEG's frame header is truncated.")
        height, width, count = struct.unpack_from(">HHB", payload, 1)
        self.components = count
        if width == 0 or height == 0:
            raise CorruptImage("The JPEG declares no pixels.")
        self._too_many_pixels(width, height)
        factors = [(payload[7 + 3 * i] >> 4, payload[7 + 3 * i] & 15) for i in range(count) if 8 + 3 * i < len(payload)]
        factors = [(h or 1, v or 1) for h, v in factors] or [(1, 1)]
        hmax, vmax = max(h for h, _ in factors), max(v for _, v in factors)
        self.blocks = sum(
            math.ceil(math.ceil(width * h / hmax) / 8) * math.ceil(math.ceil(height * v / vmax) / 8) for h, v in factors
        )
        self.sequential = code in _HUFFMAN_SEQUENTIAL
        if code in _PROGRESSIVE and self.blocks * 128 > PROGRESSIVE_BUDGET_BYTES:
            raise TooLarge(
                f"The progressive JPEG of {width}×{height} pixels would need "
                f"{self.blocks * 128 / 2**20:.0f} MB to decode (at most {PROGRESSIVE_BUDGET_BYTES / 2**20:.0f} MB). "
                "Save it as a baseline (non-progressive) JPEG.",
                code="image_too_large",
            )

    def _scan(self) -> None:
        self.scans += 1
        if self.scans > MAX_JPEG_SCANS:
            raise CorruptImage(
                f"The JPEG has more than {MAX_JPEG_SCANS} scans; ordinary photos have at most about 20.",
                code="image_too_complex",
            )
        self.state = "entropy"

    def finish(self) -> None:
        if self.single_scan_at is not None:
            self.entropy_bytes = self.seen - self.single_scan_at
        if self.sequential and self.scans and self.entropy_bytes * 8 < self.blocks * MIN_BITS_PER_BLOCK:
            raise CorruptImage(
                f"The JPEG declares {self.blocks:,} blocks but holds only {self.entropy_bytes:,} bytes of image "
                "data: it is truncated or forged."
            )


class PngWalker(Walker):
    def __init__(self, max_pixels: int) -> None:
        super().__init__(max_pixels)
        self.signature = False
        self.chunks = 0
        self.idat_bytes = 0
        self.raw_bytes = 0

    def _walk(self) -> int:
        buf, pos = self.buf, 0
        if not self.signature:
            if len(buf) < 8:
                return 0
            if bytes(buf[:8]) != PNG_SIGNATURE:
                raise CorruptImage("The PNG signature is damaged.")
            self.signature, pos = True, 8
        while not self.done:
            if len(buf) - pos < 8:
                return pos
            length, kind = struct.unpack_from(">I4s", buf, pos)
            if length > 0x7FFFFFFF:
                raise CorruptImage("The PNG's structure is broken (a chunk longer than PNG allows).")
            self.chunks += 1
            if self.chunks > PNG_CHUNKS_BASE + self.seen // PNG_BYTES_PER_CHUNK:
                raise CorruptImage(
                    f"The PNG is made of more than {self.chunks - 1:,} chunks in {self.seen:,} bytes; "
                    "ordinary images have a few large ones.",
                    code="image_too_complex",
                )
            if kind == b"IHDR":
                if len(buf) - pos < 8 + 13:
                    self.chunks -= 1  # counted again when the rest has arrived
                    return pos
                self._header(bytes(buf[pos + 8 : pos + 21]))
            elif kind == b"IDAT":
                self.idat_bytes += length
            elif kind == b"IEND":
                self.done = True
            pos += 8
            self.skip = length + 4  # data and CRC
            step = min(self.skip, len(buf) - pos)
            pos += step
            self.skip -= step
            if self.skip:
                return pos
        return pos

    def _header(self, data: bytes) -> None:
        width, height, depth, color, _c, _f, _interlace = struct.unpack(">IIBBBBB", data)
        if width == 0 or height == 0:
            raise CorruptImage("The PNG declares no pixels.")
        self._too_many_pixels(width, height)
        row = math.ceil(width * _PNG_CHANNELS.get(color, 4) * max(depth, 1) / 8)
        self.raw_bytes = height * (row + 1)

    def finish(self) -> None:
        # Interlaced images hold a little more raw data; the bound is still far beyond any real file.
        if self.raw_bytes and self.idat_bytes * DEFLATE_MAX_RATIO < self.raw_bytes:
            raise CorruptImage(
                f"The PNG declares {self.raw_bytes:,} bytes of pixels but holds only {self.idat_bytes:,} "
                "compressed bytes: it is truncated or forged."
            )


def walker_for(head: bytes, max_pixels: int) -> Walker | None:
    """A walker for the image type in `head` (JPEG, PNG), or None (other types are not walked)."""
    if head.startswith(b"\xff\xd8\xff"):
        return JpegWalker(max_pixels)
    if head.startswith(PNG_SIGNATURE):
        return PngWalker(max_pixels)
    return None


BLOCK_BYTES = 1 << 20


def check(source: Path | bytes, max_pixels: int) -> None:
    """Walk a whole image file or buffer; raises CorruptImage or TooLarge when a limit is crossed."""
    if isinstance(source, bytes):
        walker = walker_for(source[:16], max_pixels)
        if walker is None:
            return
        for start in range(0, len(source), BLOCK_BYTES):
            end = min(start + BLOCK_BYTES, len(source))
            walker.feed(source[start:end])
            if walker.done:  # the rest needs no walk, only counting
                walker.seen += len(source) - end
                break
        walker.finish()
        return
    with source.open("rb") as fh:
        block = fh.read(BLOCK_BYTES)
        walker = walker_for(block[:16], max_pixels)
        if walker is None:
            return
        while block:
            walker.feed(block)
            if walker.done:  # the rest needs no walk, only counting
                walker.seen += os.fstat(fh.fileno()).st_size - fh.tell()
                break
            block = fh.read(BLOCK_BYTES)
    walker.finish()
