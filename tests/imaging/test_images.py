"""Image admission and preparation."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from boothgate import errors
from boothgate.imaging import images
from tests.conftest import make_jpeg, make_png


def test_sniff_uses_bytes_not_names() -> None:
    assert images.sniff(make_jpeg()[:16]) == "jpeg"
    assert images.sniff(make_png()[:16]) == "png"
    assert images.sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert images.sniff(b"\x00\x00\x00\x18ftypheic") == "heic"
    assert images.sniff(b"GIF89a") is None


def test_large_jpeg_is_decoded_scaled_not_full_size(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    photo = make_jpeg(4000, 3000, seed=1)
    drafts = []
    from PIL import JpegImagePlugin

    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):  # type: ignore[no-untyped-def]
        result = original_draft(self, mode, size)
        drafts.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    prepared = images.prepare(photo, 1_000_000, 200_000_000)
    assert drafts and drafts[0][0] * drafts[0][1] < 4000 * 3000 / 3, "libjpeg must decode at a reduced scale"
    assert prepared.width * prepared.height <= 1_000_000
    assert prepared.mime == "image/jpeg"


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A valid PNG header declaring 100 000 × 100 000 pixels, with almost no data.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    bomb += chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    with pytest.raises(errors.TooLarge):
        images.inspect(bomb, 100_000_000)


def test_truncated_and_fake_images() -> None:
    photo = make_jpeg(seed=2)
    with pytest.raises(errors.CorruptImage):
        images.prepare(photo[: len(photo) // 3], 1_000_000, 100_000_000)
    with pytest.raises(errors.UnsupportedImage):
        images.inspect(b"hello world, not an image", 100_000_000)


def test_png_with_transparency_stays_png_and_jpeg_result_passes_through() -> None:
    prepared = images.prepare(make_png(), 1_000_000, 100_000_000)
    assert prepared.mime == "image/png"
    jpeg = make_jpeg(seed=3)
    assert images.finish_result(jpeg, "jpeg") == (jpeg, "image/jpeg")
    data, mime = images.finish_result(jpeg, "png")
    assert mime == "image/png" and Image.open(io.BytesIO(data)).format == "PNG"
    data, mime = images.finish_result(make_png(), "jpeg")
    assert mime == "image/png", "a cut-out is not flattened onto white"


def _photo_image(width: int, height: int) -> Image.Image:
    with Image.open(io.BytesIO(make_jpeg(width, height, seed=11, quality=95))) as im:
        return im.convert("RGB")


def test_saved_gives_the_bytes_pillow_writes() -> None:
    """`images.saved` (an in-memory file descriptor) writes what Pillow writes into a BytesIO."""
    photo = _photo_image(900, 600)
    for im, fmt, params in ((photo, "JPEG", {"quality": 90, "optimize": False}),
                            (photo.convert("RGBA"), "PNG", {"compress_level": 1})):  # fmt: skip
        reference = io.BytesIO()
        im.save(reference, fmt, **params)
        assert images.saved(im, fmt, **params) == reference.getvalue()
    prepared = images.encode(photo, "jpeg", 90)
    with Image.open(io.BytesIO(prepared.data)) as back:
        assert back.size == (900, 600) and prepared.mime == "image/jpeg"


@pytest.mark.skipif(not hasattr(__import__("os"), "memfd_create"), reason="no in-memory file descriptors here")
def test_an_encode_in_a_thread_lets_the_other_threads_run() -> None:
    """An early decode's finish encodes in a thread of the server process: while it encodes, the event
    loop's thread must get the GIL at once, not only at Pillow's turns of the GIL (~5 ms each). Counted as
    the wake-ups of a thread sleeping 1 ms meanwhile, against the same encodes into a BytesIO."""
    import threading
    import time

    photo = _photo_image(3000, 2000)

    def wakeups(encode: object) -> int:
        done = threading.Event()

        def run() -> None:
            for _ in range(8):
                encode()  # type: ignore[operator]
            done.set()

        count = 0
        worker = threading.Thread(target=run)
        worker.start()
        while not done.is_set():
            time.sleep(0.001)
            count += 1
        worker.join()
        return count

    held = wakeups(lambda: photo.save(io.BytesIO(), "JPEG", quality=90))
    released = wakeups(lambda: images.saved(photo, "JPEG", quality=90))
    assert released >= 2 * held, f"{released} wake-ups while encoding with images.saved, {held} with a BytesIO"
