"""A JPEG decoded as its bytes arrive: libjpeg fed chunk by chunk (Pillow's push decoder), at the DCT
scale the provider needs, holding only the scaled image — so one early decode costs a few megabytes and
a few milliseconds per chunk, and as many may run as the uploads under way, bounded by a memory budget
(`DecodeBudget`) rather than by the number of cores.

Why this is safe outside a worker process: each `feed` does work proportional to the bytes it is given
(a baseline JPEG's entropy-coded data is decoded once, front to back), so stopping means not feeding the
next chunk. Only baseline (sequential) JPEGs are taken: a progressive one keeps full-size coefficients
and may re-walk them per scan, so it is prepared after its last byte in a worker process as before
(`NotIncremental`). The structural limits (`imagecheck`) walk every byte as it is fed, exactly as at
admission, so a hostile photo is refused while it is still arriving.

The pixels are the same as the after-the-last-byte path's (`images.decode_scaled`): the same draft plan
(`images.scale_plan`), orientation and resize (`images.finish_scaled`), the same encoder.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from boothgate.imaging import images
from boothgate.imaging.imagecheck import Walker, walker_for
from boothgate.imaging.prepared import PreparedImage

# The header (SOI … SOS) must fit in this: EXIF with a thumbnail is ~64 kB; more is not worth parsing again.
MAX_HEADER_BYTES = 1024 * 1024
# libjpeg's own state (Huffman tables, MCU row buffers, colour conversion) and the chunk being fed: a
# generous allowance beside the scaled image, so the budget errs towards refusing.
WORKING_BYTES = 2 * 1024 * 1024


class NotIncremental(Exception):
    """This photo is not decoded as it arrives (not a baseline JPEG, header too large, over the budget):
    it is prepared after its last byte, as usual."""


class DecodeBudget:
    """Memory for early decodes, reserved before a decoder allocates and given back when it ends. A
    reservation that does not fit is refused (the photo is prepared after its last byte): never over."""

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.used_bytes = 0
        self.refused = 0  # early decodes refused for want of memory
        self.started = 0  # early decodes that got their memory
        self._lock = threading.Lock()  # reserved from decoder threads

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.used_bytes + size > self.total_bytes:
                self.refused += 1
                return False
            self.used_bytes += size
            self.started += 1
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used_bytes -= size


@dataclass(frozen=True)
class Plan:
    draft: tuple[int, int]
    target: tuple[int, int]
    orientation: int | None
    cost: int  # bytes reserved in the budget


class IncrementalJpeg:
    """Feed it the photo's bytes in order (`feed`), then `finish` for the prepared image. Not thread-safe:
    one feed at a time (early.py runs them one after another in a thread)."""

    def __init__(self, max_pixels: int, max_source_pixels: int, quality: int, budget: DecodeBudget) -> None:
        self.max_pixels, self.max_source_pixels, self.quality = max_pixels, max_source_pixels, quality
        self.budget = budget
        self.plan: Plan | None = None
        self.fed = 0
        self._head = bytearray()  # the bytes until the header parses
        self._walker: Walker | None = None
        self._image: Image.Image | None = None
        self._decoder: Image.core.ImagingDecoder | ImageFile.PyDecoder | None = None
        self._pending = b""  # bytes the decoder has not consumed yet (it suspends mid-MCU)
        self._ended = False  # the decoder saw the end of the image
        self._closed = False

    def feed(self, data: bytes) -> None:
        """Decode what these bytes allow. Raises a BoothError (structural limits), NotIncremental, or
        OSError when libjpeg cannot decode them (the usual path then gives the photo its answer)."""
        if self._closed:
            raise NotIncremental("closed")
        if not data:
            return
        self.fed += len(data)
        self._walk(data)
        if self._decoder is None:
            self._head += data
            self._open()
            return
        self._decode(data)

    def finish(self) -> PreparedImage:
        """The whole photo has been fed: the prepared provider input (the memory is given back)."""
        try:
            if self._walker is not None:
                self._walker.finish()
            if self._decoder is None or self._image is None or self.plan is None:
                raise NotIncremental("the header never parsed")
            if not self._ended:
                self._decode(b"")
            if not self._ended:
                raise OSError("image file is truncated")
            im = images.finish_scaled(self._image, self.plan.orientation, self.plan.target, self.max_pixels)
            return images.encode(im, "jpeg", self.quality)
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.plan is not None:
            self.budget.release(self.plan.cost)
        if self._decoder is not None:
            self._decoder.cleanup()
        self._decoder = self._image = None
        self._pending = b""
        self._head = bytearray()

    # --- the steps -------------------------------------------------------------------------
    def _walk(self, data: bytes) -> None:
        if self._walker is None:
            head = bytes(self._head[:16]) + data[: max(0, 16 - len(self._head))]
            if len(head) < 16:
                return  # fed again with the head once there are 16 bytes (`_open` keeps them)
            self._walker = walker_for(head, self.max_source_pixels)
            if self._walker is None:
                raise NotIncremental("not a JPEG")
            data = bytes(self._head) + data  # what came before the walker existed
        self._walker.feed(data)

    def _open(self) -> None:
        try:
            # Reads up to the start of the scan; decoding reads from the decoder's own buffer, not this file.
            im = Image.open(io.BytesIO(bytes(self._head)), formats=["JPEG"])
        except (UnidentifiedImageError, *images.UNREADABLE):
            if len(self._head) > MAX_HEADER_BYTES:
                raise NotIncremental("the header is too large") from None
            return  # not all of the header yet
        if im.format != "JPEG" or im.info.get("progressive") or im.mode not in ("RGB", "L") or len(im.tile) != 1:
            raise NotIncremental("not a baseline JPEG in RGB or grey")
        orientation = images.orientation_of(im)
        draft, target = images.scale_plan(im.width, im.height, "jpeg", orientation, self.max_pixels)
        assert draft is not None
        im.draft("RGB", draft)
        bands = len(im.mode)
        cost = im.width * im.height * bands + target[0] * target[1] * 3 + WORKING_BYTES
        if not self.budget.reserve(cost):
            raise NotIncremental("the early decoders' memory budget is taken")
        self.plan = Plan(draft, target, orientation, cost)
        im.load_prepare()
        decoder_name, extents, offset, args = im.tile[0]
        im.tile = []
        decoder = Image._getdecoder(im.mode, decoder_name, args, im.decoderconfig)
        decoder.setimage(im.im, extents)
        self._decoder = decoder
        self._image = im
        rest, self._head = bytes(self._head[offset:]), bytearray()
        self._decode(rest)

    def _decode(self, data: bytes) -> None:
        if self._ended or self._decoder is None:
            return
        buffer = self._pending + data if self._pending else data
        consumed, status = self._decoder.decode(buffer)
        if consumed < 0:
            self._ended, self._pending = True, b""
            if status < 0:
                raise OSError(f"the JPEG decoder failed ({status})")
            return
        self._pending = buffer[consumed:]
