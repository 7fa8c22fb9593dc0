"""The structural walk: what it refuses, and the single-scan baseline JPEG whose entropy-coded bytes it
does not search (libjpeg decodes such a file in one pass and refuses a second scan: checked here too)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boothgate.errors import CorruptImage
from boothgate.imaging import imagecheck, images
from tests.conftest import make_jpeg
from tests.imaging.test_image_limits import progressive_with_many_scans

MAX_PIXELS = 200_000_000


def baseline(width: int, height: int, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray((rng.random((height, width, 3)) * 255).astype("uint8")).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def walk_in_pieces(data: bytes, piece: int) -> None:
    """As an upload still arriving is walked (boothgate.imaging.incremental): a few bytes at a time."""
    walker = imagecheck.walker_for(data[:16], MAX_PIXELS)
    assert walker is not None
    for start in range(0, len(data), piece):
        walker.feed(data[start : start + piece])
    walker.finish()


@pytest.mark.parametrize("how", ["bytes", "path", "pieces"])
def test_a_baseline_jpeg_cut_to_a_sliver_is_refused(how: str, tmp_path: Path) -> None:
    whole = make_jpeg(3000, 2000, seed=3, quality=95)
    sliver = whole[: whole.index(b"\xff\xda") + 4000]  # the header and the first 4 kB of the scan
    with pytest.raises(CorruptImage, match="truncated or forged"):
        if how == "bytes":
            imagecheck.check(sliver, MAX_PIXELS)
        elif how == "path":
            (tmp_path / "p.jpg").write_bytes(sliver)
            imagecheck.check(tmp_path / "p.jpg", MAX_PIXELS)
        else:
            walk_in_pieces(sliver, 1000)


@pytest.mark.parametrize("how", ["bytes", "pieces"])
def test_whole_photos_pass(how: str) -> None:
    for data in (make_jpeg(1600, 1200, seed=4), baseline(640, 480)):
        if how == "bytes":
            imagecheck.check(data, MAX_PIXELS)
        else:
            walk_in_pieces(data, 777)


def test_a_progressive_jpeg_still_has_its_scans_counted() -> None:
    with pytest.raises(CorruptImage, match="scans"):
        imagecheck.check(progressive_with_many_scans(200), MAX_PIXELS)


def test_a_second_scan_in_a_single_scan_baseline_jpeg_is_refused_by_the_decoder() -> None:
    """The walk passes over a baseline JPEG's one interleaved scan without searching it; what it relies on:
    scans appended to such a file (a CPU bomb for a decoder that would run them) make the decode fail."""
    data = baseline(800, 600)
    scan = data[data.index(b"\xff\xda") : -2]
    forged = data[:-2] + scan * 50 + b"\xff\xd9"
    imagecheck.check(forged, MAX_PIXELS)  # not searched: the decoder is the limit here
    with pytest.raises(CorruptImage):
        images.decode_scaled(forged, 120_000, MAX_PIXELS, checked=True)
