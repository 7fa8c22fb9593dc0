"""Property-based tests (Hypothesis) of what admits a booth upload: the multipart reader and the image
checks. Whatever bytes arrive, in whatever chunks, the answer is an Upload / ImageInfo / PreparedImage
or a booth error with its status — never another exception, never more than the cap on disk, never
a pixel decoded during admission."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from boothgate import errors
from boothgate.booth.multipart import Limits, Upload, read_upload
from boothgate.imaging import images
from tests.bad_inputs import CORRUPT_EXIF, jpeg_with_app1, png_declaring
from tests.conftest import make_jpeg, make_png

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BOUNDARY = "hypo-boundary-7Qx"
LIMITS = Limits(max_bytes=64_000, idle_timeout_seconds=5, max_fields=40, max_field_bytes=2_000)

names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters='"\\%;'), min_size=1, max_size=20
).filter(lambda n: n not in ("fileToUpload", "file"))


def _form(fields: list[tuple[str, bytes]], photo: bytes | None, boundary: str = BOUNDARY) -> bytes:
    out = b""
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
    if photo is not None:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="fileToUpload"; filename="a.jpg"\r\n'.encode()
        out += b"Content-Type: image/jpeg\r\n\r\n" + photo + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def _chunks(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    position, i = 0, 0
    while position < len(body):
        size = sizes[i % len(sizes)] if sizes else len(body)
        yield body[position : position + size]
        position += size
        i += 1


def _read(
    body: bytes, sizes: list[int], limits: Limits = LIMITS, content_type: str | None = None
) -> Upload | errors.BoothError:
    """Run the reader in a fresh folder; return its Upload or the booth error it raised."""
    with tempfile.TemporaryDirectory() as folder:
        dest = Path(folder) / "incoming.part"
        ctype = content_type or f"multipart/form-data; boundary={BOUNDARY}"
        try:
            upload = asyncio.run(read_upload(ctype, _chunks(body, sizes), dest, limits))
        except errors.BoothError as exc:
            result: Upload | errors.BoothError = exc
        else:
            result = upload
        written = list(Path(folder).iterdir())
        assert all(p == dest for p in written), f"the reader wrote {written}"
        assert not written or dest.stat().st_size <= limits.max_bytes
        if isinstance(result, Upload) and result.path is not None:
            result.head = dest.read_bytes()  # keep the photo's bytes past the folder's life
        return result


chunkings = st.lists(st.integers(1, 700), min_size=1, max_size=8)


@FAST
@given(
    fields=st.lists(st.tuples(names, st.binary(max_size=300)), max_size=12, unique_by=lambda f: f[0]),
    photo=st.binary(min_size=1, max_size=5_000),
    sizes=chunkings,
)
def test_a_well_formed_form_round_trips_in_any_chunking(
    fields: list[tuple[str, bytes]], photo: bytes, sizes: list[int]
) -> None:
    delimiter = f"\r\n--{BOUNDARY}".encode()
    assume(all(delimiter not in value for _, value in fields) and delimiter not in b"\r\n" + photo)
    result = _read(_form(fields, photo), sizes)
    assert isinstance(result, Upload), result
    assert result.head == photo and result.size == len(photo)
    assert result.sha256 == hashlib.sha256(photo).hexdigest()
    expected = {name: value.decode("utf-8", "replace").replace("\x00", "") for name, value in fields}
    assert result.fields == expected


booth_errors = (errors.MalformedRequest, errors.TooLarge)


@FAST
@given(body=st.binary(max_size=3_000), sizes=chunkings)
def test_arbitrary_bytes_are_refused_cleanly(body: bytes, sizes: list[int]) -> None:
    result = _read(body, sizes)
    assert isinstance(result, (Upload, *booth_errors))
    if isinstance(result, errors.BoothError):
        assert result.status in (400, 413)


@FAST
@given(
    photo=st.binary(min_size=1, max_size=2_000),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=6)), min_size=1, max_size=6),
    cut=st.integers(0, 10_000),
    sizes=chunkings,
)
def test_a_mangled_form_is_read_or_refused_never_crashes(
    photo: bytes, edits: list[tuple[int, bytes]], cut: int, sizes: list[int]
) -> None:
    body = bytearray(_form([("id", b"CY04N"), ("password", b"pw")], photo))
    for position, replacement in edits:
        position %= len(body)
        body[position : position + len(replacement)] = replacement
    result = _read(bytes(body[: max(1, cut % (len(body) + 1))]), sizes)
    assert isinstance(result, (Upload, *booth_errors))


@FAST
@given(count=st.integers(0, 120), value_size=st.integers(0, 4_000), photo_size=st.integers(0, 80_000), sizes=chunkings)
def test_limits_hold_whatever_the_shape(count: int, value_size: int, photo_size: int, sizes: list[int]) -> None:
    fields = [(f"f{i}", b"v") for i in range(count)] + [("big", b"x" * value_size)]
    body = _form(fields, b"\xff\xd8\xff" + b"\x00" * photo_size)
    result = _read(body, sizes)
    if len(body) > LIMITS.max_bytes:
        assert isinstance(result, errors.TooLarge) or (
            isinstance(result, errors.MalformedRequest) and result.code == "too_many_fields"
        ), result
    elif count + 1 > LIMITS.max_fields:
        assert isinstance(result, errors.MalformedRequest) and result.code == "too_many_fields"
    elif value_size > LIMITS.max_field_bytes:
        assert isinstance(result, errors.TooLarge) and result.code == "field_too_large"
    else:
        assert isinstance(result, Upload) and result.size == photo_size + 3


# ---------------------------------------------------------------- images
SEEDS = {
    "jpeg": make_jpeg(48, 32, seed=1),
    "progressive": None,
    "png": make_png(40, 30),
    "exif": make_jpeg(48, 32, seed=2, exif_orientation=6),
    "webp": None,
}


def _seed(name: str) -> bytes:
    data = SEEDS[name]
    if data is None:
        buf = io.BytesIO()
        image = Image.open(io.BytesIO(make_jpeg(48, 32, seed=3)))
        if name == "webp":
            image.save(buf, "WEBP")
        else:
            image.save(buf, "JPEG", progressive=True)
        data = SEEDS[name] = buf.getvalue()
    return data


image_errors = (errors.UnsupportedImage, errors.TooLarge, errors.CorruptImage)


@pytest.fixture
def no_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admission reads headers only: any pixel decode during inspect fails the test."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("inspect() decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@FAST
@given(data=st.binary(max_size=400))
@pytest.mark.usefixtures("no_pixel_decoding")
def test_inspect_of_arbitrary_bytes_answers_or_refuses(data: bytes) -> None:
    try:
        info = images.inspect(data, 20_000_000)
    except image_errors:
        return
    assert info.width * info.height <= 20_000_000


@FAST
@given(
    name=st.sampled_from(sorted(SEEDS)),
    flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=10),
    cut=st.integers(1, 100_000),
)
@example(name="png", flips=[(11, 0)], cut=16)  # a zero-length IHDR: Pillow raises ValueError
def test_prepare_of_a_damaged_photo_answers_or_refuses(name: str, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_seed(name))
    for position, value in flips:
        data[position % len(data)] = value
    data = data[: max(1, cut % (len(data) + 1))]
    try:
        prepared = images.prepare(bytes(data), 1_000, 20_000_000)
    except image_errors:
        return
    assert prepared.width * prepared.height <= 1_000
    assert images.sniff(prepared.data[:16]) in ("jpeg", "png")


@FAST
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1))
@pytest.mark.usefixtures("no_pixel_decoding")
def test_declared_dimensions_decide_admission_before_any_decoding(width: int, height: int) -> None:
    cap = 20_000_000
    try:
        info = images.inspect(png_declaring(width, height), cap)
    except errors.TooLarge as exc:
        assert width * height > cap, exc.message
        return
    except errors.CorruptImage:
        assert width * height > cap, "a PNG under the cap with a valid header must be admitted"
        return
    assert (info.width, info.height) == (width, height) and width * height <= cap


@FAST
@given(payload=st.one_of(st.sampled_from(list(CORRUPT_EXIF.values())), st.binary(max_size=200)))
def test_any_exif_block_leaves_the_photo_usable(payload: bytes) -> None:
    prepared = images.prepare(jpeg_with_app1(payload), 5_000, 20_000_000)
    assert prepared.mime == "image/jpeg" and prepared.width * prepared.height <= 5_000
