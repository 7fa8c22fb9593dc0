"""The early decoder (`imaging/incremental.py`): a photo fed in pieces as its upload arrives gives exactly the
provider input of the usual decode after the last byte, and its memory budget refuses rather than
over-allocates. Real photos: matplotlib's Grace Hopper JPEG as the camera wrote it, scikit-image's
astronaut enlarged to a DSLR-sized frame."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from matplotlib import cbook
from PIL import Image

from boothgate.errors import BoothError
from boothgate.imaging import images
from boothgate.imaging.incremental import DecodeBudget, IncrementalJpeg, NotIncremental
from tests.local_photos import astronaut

MAX_SOURCE = 200_000_000
MB = 1024 * 1024


def grace_hopper_jpeg() -> bytes:
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()


def astronaut_jpeg(orientation: int = 1, progressive: bool = False) -> bytes:
    """The astronaut at 3000×3000 (a DSLR-sized frame), with an EXIF orientation."""
    im = Image.fromarray(astronaut()).resize((3000, 2000), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92, exif=exif.tobytes(), progressive=progressive)
    return buf.getvalue()


def fed(data: bytes, piece: int, max_pixels: int, budget: DecodeBudget) -> images.PreparedImage:
    decoder = IncrementalJpeg(max_pixels, MAX_SOURCE, 90, budget)
    for start in range(0, len(data), piece):
        decoder.feed(data[start : start + piece])
    return decoder.finish()


@pytest.mark.parametrize(
    ("photo", "max_pixels"),
    [
        ("grace_hopper", 100_000),  # a DCT scale within reach: no resize
        ("grace_hopper", 1_000_000),  # smaller than the target: decoded at full size
        ("astronaut", 2_000_000),  # 3000×2000 at 1/2
        ("astronaut-turned", 1_000_000),  # EXIF orientation 6 and a resize after the draft
    ],
)
@pytest.mark.parametrize("piece", [997, 64 * 1024])
def test_a_photo_fed_in_pieces_equals_the_decode_after_its_last_byte(photo: str, max_pixels: int, piece: int) -> None:
    data = {
        "grace_hopper": grace_hopper_jpeg,
        "astronaut": astronaut_jpeg,
        "astronaut-turned": lambda: astronaut_jpeg(orientation=6),
    }[photo]()
    budget = DecodeBudget(64 * MB)
    got = fed(data, piece, max_pixels, budget)
    usual = images.prepare(data, max_pixels, MAX_SOURCE, 90)
    assert (got.width, got.height) == (usual.width, usual.height)
    assert got.data == usual.data, "the same pixels, encoded the same way"
    assert budget.started == 1 and budget.used_bytes == 0, "the memory is given back when it is done"


def test_the_budget_refuses_a_decoder_that_does_not_fit_and_counts_it() -> None:
    data = astronaut_jpeg()
    budget = DecodeBudget(64 * MB)
    first = IncrementalJpeg(2_000_000, MAX_SOURCE, 90, budget)
    first.feed(data[: len(data) // 2])
    held = budget.used_bytes
    assert 1500 * 1000 * 3 <= held <= 16 * MB, "it reserves about its scaled image, not the full-size one"
    tight = DecodeBudget(held + held // 2)  # room for one, not two
    one = IncrementalJpeg(2_000_000, MAX_SOURCE, 90, tight)
    one.feed(data[: len(data) // 2])
    two = IncrementalJpeg(2_000_000, MAX_SOURCE, 90, tight)
    with pytest.raises(NotIncremental):
        two.feed(data[: len(data) // 2])
    assert tight.refused == 1 and tight.used_bytes == held, "refused, nothing more reserved"
    one.close()
    first.close()
    assert tight.used_bytes == 0 and budget.used_bytes == 0
    # once the memory is back, the next one fits
    assert fed(data, 256 * 1024, 2_000_000, tight).width == 1500


def test_a_progressive_photo_is_left_to_the_usual_decode() -> None:
    budget = DecodeBudget(64 * MB)
    decoder = IncrementalJpeg(2_000_000, MAX_SOURCE, 90, budget)
    with pytest.raises(NotIncremental):
        decoder.feed(astronaut_jpeg(progressive=True))
    assert budget.started == 0 and budget.used_bytes == 0


def test_a_hostile_photo_is_refused_while_it_is_fed() -> None:
    """A baseline JPEG whose header declares 30000×30000 pixels: the structural walk refuses it (413) at its
    frame header, before the decoder allocates anything."""
    data = bytearray(grace_hopper_jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (30000).to_bytes(2, "big") * 2
    budget = DecodeBudget(64 * MB)
    decoder = IncrementalJpeg(2_000_000, MAX_SOURCE, 90, budget)
    with pytest.raises(BoothError) as refused:
        for start in range(0, len(data), 4096):
            decoder.feed(bytes(data[start : start + 4096]))
    assert refused.value.status == 413
    decoder.close()
    assert budget.started == 0 and budget.used_bytes == 0


def test_a_truncated_photo_is_not_a_result() -> None:
    data = astronaut_jpeg()
    budget = DecodeBudget(64 * MB)
    decoder = IncrementalJpeg(2_000_000, MAX_SOURCE, 90, budget)
    decoder.feed(data[: len(data) * 2 // 3])
    with pytest.raises((OSError, BoothError)):
        decoder.finish()
    assert budget.used_bytes == 0
