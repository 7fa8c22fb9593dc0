"""Result shape and overlay: fit the provider's image to the booth's print layout. Pure and synchronous —
run on an image worker (`services.imaging`), so every entry point is module-level with picklable arguments.

A booth lays the result into a print template made for the photo's aspect ratio. Gemini answers e.g.
1024×1024 or 1264×848, Turbotext whatever it likes; the layout then crops or letterboxes it and heads are
cut off. So the result is cut to the photo's ratio here (around the faces when the offline engine's face
detector is installed, around the centre otherwise), resampled to the photo's size (capped), and the
slot's overlay (frame, logo) is laid over it.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from boothgate.errors import CorruptImage, ProviderFailed, UnsupportedImage
from boothgate.imaging.images import UNREADABLE, _has_transparency, encode, finish_result, sniff
from boothgate.imaging.qrmark import QrMark, lay_qr

log = logging.getLogger("boothgate.imaging.shape")

# Below this relative difference two aspect ratios count as the same (a pixel of rounding).
SAME_RATIO = 0.004
# Enlarging by more than this gets a light unsharp mask: LANCZOS upscales look soft on a print.
SHARPEN_ABOVE_SCALE = 1.05
SHARPEN = ImageFilter.UnsharpMask(radius=0.8, percent=50, threshold=2)
# Faces are looked for on a copy this large (long side): enough for a head, cheap on a CPU.
FACE_SEARCH_LONG_SIDE = 800
# Faces at least this share of the largest one's area are kept in the crop (a group, not background).
GROUP_FACE_SHARE = 0.25
OVERLAY_CACHE_SIZE = 4
# An overlay is decoded whole and kept per worker: 40 megapixels (160 MB as RGBA) is plenty for a print.
OVERLAY_MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class ShapePlan:
    """How to shape one result (plain data: crosses to a worker process)."""

    shape: str  # match_photo | as_returned | fixed
    output_format: str  # jpeg | png: the slot's choice
    quality: int
    photo_size: tuple[int, int] | None = None  # the photo as sent, upright (after EXIF orientation)
    fixed_size: tuple[int, int] | None = None  # for "fixed"
    long_side_pixels: int = 3000  # match_photo: the photo's long side, at most this
    overlay: str | None = None  # path of the slot's overlay PNG/WebP
    overlay_sha256: str | None = None
    qr: QrMark | None = None  # the guest page's QR code, laid last (after the overlay)


def target_size(plan: ShapePlan, result: tuple[int, int]) -> tuple[int, int]:
    """The size the result is answered in."""
    if plan.shape == "fixed" and plan.fixed_size:
        return plan.fixed_size
    if plan.shape == "match_photo" and plan.photo_size:
        return capped_size(plan.photo_size, plan.long_side_pixels)
    return result


def capped_size(size: tuple[int, int], long_side_pixels: int) -> tuple[int, int]:
    """`size` with its long side at most `long_side_pixels` (the shape kept; never enlarged)."""
    width, height = size
    scale = min(1.0, long_side_pixels / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def crop_box(size: tuple[int, int], ratio: float, faces: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The largest box of aspect `ratio` (w/h) inside `size`, around the faces (or the centre)."""
    width, height = size
    if width / height > ratio:  # too wide: cut the sides
        box_w, box_h = max(1, round(height * ratio)), height
    else:  # too tall: cut top and bottom
        box_w, box_h = width, max(1, round(width / ratio))
    cx, cy = width / 2, height / 2
    if faces:
        largest = faces[0][2] * faces[0][3]
        group = [f for f in faces if f[2] * f[3] >= largest * GROUP_FACE_SHARE]
        left = min(f[0] for f in group)
        top = min(f[1] for f in group)
        right = max(f[0] + f[2] for f in group)
        bottom = max(f[1] + f[3] for f in group)
        cx, cy = (left + right) / 2, (top + bottom) / 2
    x = round(min(max(cx - box_w / 2, 0), width - box_w))
    y = round(min(max(cy - box_h / 2, 0), height - box_h))
    return x, y, x + box_w, y + box_h


def find_faces(im: Image.Image) -> list[tuple[int, int, int, int]]:
    """Faces in `im` (image pixels, largest first) from the offline engine's detector; [] without it.

    The detector is optional (the `local` engine's mediapipe); any failure means "no faces", so a crop
    falls back to the centre instead of costing the guest their print.
    """
    try:
        from boothgate.local.faces import detect_faces  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return []
    try:
        scale = min(1.0, FACE_SEARCH_LONG_SIDE / max(im.size))
        small = im.convert("RGB")
        if scale < 1.0:
            small = small.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
        boxes = detect_faces(small)
        return [
            (round(x / scale), round(y / scale), max(1, round(w / scale)), max(1, round(h / scale)))
            for x, y, w, h in boxes
        ]
    except Exception:
        log.warning("face detection failed; cropping around the centre", exc_info=True)
        return []


def fit(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`im` cut to the aspect of `size` (faces kept) and resampled to exactly `size`."""
    want = size[0] / size[1]
    have = im.width / im.height
    if abs(have / want - 1) > SAME_RATIO:
        im = im.crop(crop_box(im.size, want, find_faces(im)))
    if im.size == size:
        return im
    if size[0] > im.width * SHARPEN_ABOVE_SCALE:
        # Sharpened before enlarging: the same crisper edges on the print for a ninth of the work
        # (an unsharp mask on 6 megapixels costs several times the Lanczos resize itself).
        im = im.filter(SHARPEN)
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


_overlays: OrderedDict[tuple[str, str | None], Image.Image] = OrderedDict()
_overlays_lock = threading.Lock()  # image workers may be threads sharing this cache


def _overlay(path: str, digest: str | None) -> Image.Image:
    """The decoded overlay, cached per worker (by content: a new upload has a new digest)."""
    key = (path, digest)
    with _overlays_lock:
        cached = _overlays.get(key)
        if cached is not None:
            _overlays.move_to_end(key)
            return cached
    with Image.open(path) as source:
        image = source.convert("RGBA")
    with _overlays_lock:
        _overlays[key] = image
        while len(_overlays) > OVERLAY_CACHE_SIZE:
            _overlays.popitem(last=False)
    return image


def lay_overlay(im: Image.Image, path: str, digest: str | None) -> Image.Image:
    """The overlay stretched to the result and composited over it (its transparent parts show the result)."""
    layer = _overlay(path, digest)
    if layer.size != im.size:
        layer = layer.resize(im.size, Image.Resampling.LANCZOS)
    had_alpha = _has_transparency(im)
    base = im.convert("RGBA")
    base.alpha_composite(layer)
    return base if had_alpha else base.convert("RGB")


def already_shaped(data: bytes, plan: ShapePlan) -> bool:
    """Whether the result already has its answer size and no overlay waits: read from the header only (a
    fraction of a millisecond), so such a result never queues for an image worker behind a burst."""
    if plan.overlay or plan.qr:
        return False
    try:
        with Image.open(io.BytesIO(data)) as im:
            return target_size(plan, im.size) == im.size and _orientation_of(im) in (None, 1)
    except (Image.DecompressionBombError, *UNREADABLE):
        return False  # the worker reads it again and says what is wrong


def _orientation_of(im: Image.Image) -> int | None:
    try:
        value = im.getexif().get(0x0112)
    except Exception:
        return None
    return value if isinstance(value, int) else None


def shape_result(data: bytes, plan: ShapePlan) -> tuple[bytes, str]:
    """The provider's result bytes, shaped and overlaid, in the slot's output format."""
    kind = sniff(data[:16])
    if kind is None or kind == "heic":
        raise ProviderFailed("The provider answered with something that is not an image.", code="provider_bad_image")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            target = target_size(plan, opened.size)
            if target == opened.size and not plan.overlay and not plan.qr:
                return finish_result(data, plan.output_format, plan.quality)  # nothing to do: no re-encode
            opened.load()
            im: Image.Image = ImageOps.exif_transpose(opened) or opened
            if im.mode not in ("RGB", "RGBA"):
                im = im.convert("RGBA" if _has_transparency(im) else "RGB")
            im = fit(im, target)
    except UNREADABLE as exc:
        raise ProviderFailed(f"The provider's image cannot be read: {exc}.", code="provider_bad_image") from exc
    if plan.overlay:
        try:
            im = lay_overlay(im, plan.overlay, plan.overlay_sha256)
        except (FileNotFoundError, *UNREADABLE):
            log.warning("overlay %s could not be laid; answering without it", plan.overlay, exc_info=True)
    if plan.qr:
        im = lay_qr(im, plan.qr)
    fmt = "png" if plan.output_format == "png" or _has_transparency(im) else "jpeg"
    prepared = encode(im, fmt, plan.quality)
    return prepared.data, prepared.mime


def oriented_size(path: Path | str) -> tuple[int, int]:
    """The photo's size as the guest sees it (EXIF orientations 5–8 swap width and height); header only."""
    with Image.open(path) as im:
        width, height = im.size
        try:
            orientation = im.getexif().get(0x0112)
        except Exception:  # corrupt EXIF: the photo is taken as upright, as `images.decode_scaled` does
            orientation = None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def check_overlay(data: bytes, max_pixels: int) -> dict[str, Any]:
    """Validate an overlay: a PNG or WebP (415 otherwise) that decodes and has transparent pixels (422)."""
    max_pixels = min(max_pixels, OVERLAY_MAX_PIXELS)
    kind = sniff(data[:16])
    if kind not in ("png", "webp"):
        raise UnsupportedImage("The overlay must be a PNG or WebP with transparency.", code="overlay_type")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                raise CorruptImage(
                    f"The overlay is {im.width}×{im.height} pixels; at most {max_pixels:,} are accepted.",
                    code="overlay_too_large",
                )
            im.load()
            transparent = _has_transparency(im)
            size = im.size
    except (Image.DecompressionBombError, *UNREADABLE) as exc:
        raise CorruptImage(f"The overlay cannot be read: {exc}.", code="overlay_corrupt") from exc
    if not transparent:
        raise CorruptImage(
            "The overlay has no transparent pixels: it would hide the whole photo. "
            "Save it as a PNG with transparency (alpha).",
            code="overlay_opaque",
        )
    return {"format": kind, "width": size[0], "height": size[1]}
