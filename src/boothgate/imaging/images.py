"""Image work: sniff, decode, orient, downscale, encode. Pure and synchronous — callers run it off the
event loop (see `services.imaging`).

A 24-megapixel JPEG is never decoded at full size when only ~2 megapixels go to the provider: Pillow's
draft mode asks libjpeg for a DCT-scaled decode (1/2, 1/4, 1/8). When a scaled size is within reach of the
provider's pixel target (`SCALE_REACH`), that scale is the result and no resize runs at all: a 6000×4000
photo at 1/4 is 1500×1000, plenty for a 2-megapixel target, and skips ~35 ms of resize and a quarter of the
encode. Before any decode, the file's structure is checked against cheap limits (`imagecheck`).
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from boothgate.errors import BoothError, CorruptImage, ProviderFailed, TooLarge, UnsupportedImage
from boothgate.imaging import imagecheck
from boothgate.imaging.prepared import PreparedImage

MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "heic": "image/heic"}
PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}

# We check dimensions ourselves before decoding; Pillow's own guard stays on as a second line.
Image.MAX_IMAGE_PIXELS = 200_000_000

# What Pillow raises on damaged bytes: OSError mostly, but a truncated PNG header raises ValueError, and
# plugins raise SyntaxError, struct.error, EOFError, IndexError or TypeError. To the booth they all mean
# the same: the image cannot be read (422), never an internal error.
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error)
# A DCT-scaled size with at least this share of the provider's pixel target is used as it is (no resize).
SCALE_REACH = 0.7
Source = Path | bytes | IO[bytes]


def sniff(head: bytes) -> str | None:
    """The image type from its first bytes: jpeg, png, webp, heic, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heif"):
        return "heic"
    return None


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def _open(source: Source) -> Image.Image:
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge("The image has too many pixels.", code="image_too_large") from exc
    except UnidentifiedImageError as exc:
        raise CorruptImage("The file looks like an image but cannot be read.") from exc
    except UNREADABLE as exc:
        raise CorruptImage(f"The image cannot be read: {exc}.") from exc


def inspect(source: Source, max_pixels: int) -> ImageInfo:
    """Type and size from the bytes and the header only — no pixel decoding.

    Raises UnsupportedImage (not an image we take), TooLarge (decompression bomb) or CorruptImage.
    """
    head = source[:16] if isinstance(source, bytes) else _read_head(source)
    kind = sniff(head)
    if kind is None:
        raise UnsupportedImage("The file is not a JPEG, PNG or WEBP image.")
    if kind == "heic":
        raise UnsupportedImage("HEIC photos are not supported: set the booth to save JPEG.", code="heic_unsupported")
    with _open(source) as im:
        width, height = im.size
    if width <= 0 or height <= 0:
        raise CorruptImage("The image has no pixels.")
    if width * height > max_pixels:
        raise TooLarge(
            f"The image is {width}×{height} pixels; at most {max_pixels:,} pixels are accepted.",
            code="image_too_large",
        )
    return ImageInfo(kind, width, height)


def admit(source: Path | bytes, max_pixels: int) -> ImageInfo:
    """`inspect` after the structural limits: what admission runs (in a thread) before any decode. The
    limits come first because even reading the header of a PNG of a million chunks costs seconds."""
    if sniff(source[:16] if isinstance(source, bytes) else _read_head(source)) in ("jpeg", "png"):
        imagecheck.check(source, max_pixels)
    return inspect(source, max_pixels)


def _read_head(source: Path | IO[bytes]) -> bytes:
    if not isinstance(source, Path):
        head = source.read(16)
        source.seek(0)
        return head
    with source.open("rb") as fh:
        return fh.read(16)


def draft_size(width: int, height: int, max_pixels: int) -> tuple[tuple[int, int], bool]:
    """The size to ask libjpeg's DCT scaling for, and whether that is the final size (no resize needed).

    The smallest scale (1/8, 1/4, 1/2) whose size fits `max_pixels` and reaches `SCALE_REACH` of it is final;
    otherwise the largest scale still at least as big as the target, then a resize.
    """
    for denom in (8, 4, 2):
        w, h = -(-width // denom), -(-height // denom)  # libjpeg rounds a scaled size up
        if SCALE_REACH * max_pixels <= w * h <= max_pixels:
            return (max(1, width // denom), max(1, height // denom)), True  # Pillow picks the scale from this
    return target_size(width, height, max_pixels), False


def target_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect that has at most `max_pixels` pixels."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def _has_transparency(im: Image.Image) -> bool:
    if im.mode in ("RGBA", "LA"):
        low, _high = im.getchannel("A").getextrema()
        return bool(low < 255)  # type: ignore[operator]
    return im.mode == "P" and "transparency" in im.info


def decode_scaled(source: Source, max_pixels: int, max_source_pixels: int, checked: bool = False) -> Image.Image:
    """Decode, apply EXIF orientation and downscale to at most `max_pixels`.

    JPEGs use draft mode so libjpeg decodes at 1/2, 1/4 or 1/8 scale when that is still big enough.
    The structure is checked first, unless admission already did (`checked`).
    """
    if isinstance(source, Path | bytes) and not checked:
        imagecheck.check(source, max_source_pixels)
    info = inspect(source, max_source_pixels)
    im = _open(source)
    try:
        exif_orientation = orientation_of(im)
        draft, target = scale_plan(info.width, info.height, info.format, exif_orientation, max_pixels)
        if draft is not None:
            im.draft("RGB", draft)
        im.load()
    except BoothError:
        im.close()
        raise
    except UNREADABLE as exc:
        im.close()
        raise CorruptImage(f"The image is damaged or truncated: {exc}.") from exc
    return finish_scaled(im, exif_orientation, target, max_pixels)


def scale_plan(
    width: int, height: int, fmt: str, orientation: int | None, max_pixels: int
) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    """What to ask a JPEG's draft mode for (None for other types) and the final upright size, for an image
    of `width`×`height` as stored. Shared by every decoder of photos, so they all give the same pixels."""
    turned = orientation in (5, 6, 7, 8)  # orientations 5–8 swap width and height
    w, h = (height, width) if turned else (width, height)
    tw, th = target_size(w, h, max_pixels)
    if fmt != "jpeg":
        return None, (tw, th)
    (dw, dh), final = draft_size(width, height, max_pixels)
    if final:
        tw, th = (dh, dw) if turned else (dw, dh)
    return ((dw, dh) if final else ((th, tw) if turned else (tw, th))), (tw, th)


def finish_scaled(im: Image.Image, orientation: int | None, target: tuple[int, int], max_pixels: int) -> Image.Image:
    """A decoded image upright (EXIF orientation) and within `max_pixels` (the plan's `target` size)."""
    if orientation not in (None, 1):
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # a broken EXIF block must not cost the guest their photo
            pass
    if im.size != target and im.width * im.height > max_pixels:
        im = im.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return im


def orientation_of(im: Image.Image) -> int | None:
    try:
        value = im.getexif().get(0x0112)
    except Exception:  # corrupt EXIF: treat as upright
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def encode(im: Image.Image, fmt: str, quality: int = 90) -> PreparedImage:
    """Encode as JPEG or PNG; JPEG drops alpha onto white."""
    if fmt == "png":
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA" if _has_transparency(im) else "RGB")
        # Level 1: a third faster than 3 for ~4 % more bytes (measured by `make bench` on photos).
        data = saved(im, "PNG", compress_level=1)
        mime = "image/png"
    else:
        if im.mode != "RGB":
            im = _flatten(im)
        data = saved(im, "JPEG", quality=quality, optimize=False)
        mime = "image/jpeg"
    return PreparedImage(data, mime, im.width, im.height)


def saved(im: Image.Image, fmt: str, **params: object) -> bytes:
    """`im.save` into bytes, through an anonymous in-memory file where the system has one (Linux).

    Saved into a BytesIO, Pillow encodes with the GIL held, 64 kB of output at a time: a JPEG encode in a
    thread (an early decode's finish, `incremental.py`) then holds up the event loop and every other thread
    for ~5 ms at each turn of the GIL — eight booths finishing together add that to each other's tail.
    Saved into a real file descriptor, Pillow encodes straight to it with the GIL released. Same bytes."""
    create = getattr(os, "memfd_create", None)
    if create is None:
        buf = io.BytesIO()
        im.save(buf, fmt, **params)
        return buf.getvalue()
    with open(create("boothgate-encode", os.MFD_CLOEXEC), "w+b") as fh:
        im.save(fh, fmt, **params)
        fh.flush()
        fh.seek(0)
        return fh.read()


def _flatten(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def prepare(
    source: Source, max_pixels: int, max_source_pixels: int, quality: int = 90, checked: bool = False
) -> PreparedImage:
    """Make a provider input: oriented, downscaled, JPEG — or PNG when it has transparency."""
    im = decode_scaled(source, max_pixels, max_source_pixels, checked)
    try:
        return encode(im, "png" if _has_transparency(im) else "jpeg", quality)
    finally:
        im.close()


def check_result(data: bytes, max_pixels: int) -> None:
    """A provider's result is admitted like a photo: structure and pixel cap, before anything decodes it.

    Raises ProviderFailed: 502 provider_bad_image (not an image, unreadable), provider_bad_response (too many
    pixels, hostile structure)."""
    kind = sniff(data[:16])
    if kind is None or kind == "heic":
        raise ProviderFailed("The provider answered with something that is not an image.", code="provider_bad_image")
    try:
        imagecheck.check(data, max_pixels)
        with _open(data) as im:
            width, height = im.size
    except CorruptImage as exc:
        raise ProviderFailed(f"The provider's image cannot be read: {exc.message}", code="provider_bad_image") from exc
    except BoothError as exc:
        raise ProviderFailed(f"The provider's image was refused: {exc.message}", code="provider_bad_response") from exc
    if width * height > max_pixels:
        raise ProviderFailed(
            f"The provider's image is {width}×{height} pixels; at most {max_pixels:,} are accepted.",
            code="provider_bad_response",
        )


def pass_through(data: bytes, output_format: str) -> tuple[bytes, str] | None:
    """The result as it is when it is already in the slot's format (no decoding); None otherwise.

    Raises ProviderFailed when the bytes are not an image at all.
    """
    kind = sniff(data[:16])
    if kind is None or kind == "heic":
        raise ProviderFailed("The provider answered with something that is not an image.", code="provider_bad_image")
    if output_format == kind and kind in ("jpeg", "png"):
        return data, MIME[kind]
    return None


def finish_result(
    data: bytes, output_format: str, quality: int = 90, max_pixels: int | None = None
) -> tuple[bytes, str]:
    """Turn a provider's result bytes into the slot's output format.

    A JPEG result for a JPEG slot is passed through untouched; a result with transparency is answered
    as PNG even when the slot asks for JPEG, so a cut-out is not flattened onto white.
    """
    if max_pixels is not None:
        check_result(data, max_pixels)
    passed = pass_through(data, output_format)
    if passed is not None:
        return passed
    kind = sniff(data[:16])
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            fmt = "png" if output_format == "png" or _has_transparency(im) else "jpeg"
            if fmt == kind:
                return data, MIME[kind]
            prepared = encode(im, fmt, quality)
    except UNREADABLE as exc:
        raise ProviderFailed(f"The provider's image cannot be read: {exc}.", code="provider_bad_image") from exc
    return prepared.data, prepared.mime


def thumbnail(source: Path | bytes, size: int = 320) -> bytes:
    """A small JPEG for the admin UI."""
    im = decode_scaled(source, size * size, 400_000_000)
    try:
        im.thumbnail((size, size), Image.Resampling.BILINEAR)
        return encode(im, "jpeg", 80).data
    finally:
        im.close()
