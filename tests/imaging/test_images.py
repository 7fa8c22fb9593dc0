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
