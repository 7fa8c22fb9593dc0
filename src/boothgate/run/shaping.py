"""The result-shape step of the spine: which plan a slot's result gets, and the slot fields behind it.

The image work itself is `boothgate.imaging.shape` (pure functions run on an image worker); this module only
decides: the slot's `result_shape` (`match_photo` default | `as_returned` | `fixed` with `result_size`),
the photo's upright size recorded at admission, the cap on the long side, and the overlay.
"""

from __future__ import annotations

import re
from pathlib import Path

from boothgate.imaging.qrmark import CORNERS, QrMark
from boothgate.imaging.shape import ShapePlan, capped_size
from boothgate.storage.models import Slot

SHAPES = ("match_photo", "as_returned", "fixed")
SIZE_PATTERN = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")
MIN_SIDE_PIXELS = 64
MAX_SIDE_PIXELS = 12_000
MAX_RESULT_PIXELS = 80_000_000


def parse_size(text: str | None) -> tuple[int, int] | None:
    """`"1800x1200"` → (1800, 1200); None when empty. ValueError (in operator words) when wrong."""
    if text is None or not text.strip():
        return None
    match = SIZE_PATTERN.match(text)
    if match is None:
        raise ValueError("Write the size as width x height in pixels, e.g. 1800x1200.")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE_PIXELS <= width <= MAX_SIDE_PIXELS and MIN_SIDE_PIXELS <= height <= MAX_SIDE_PIXELS):
        raise ValueError(f"Each side must be {MIN_SIDE_PIXELS}–{MAX_SIDE_PIXELS:,} pixels.")
    if width * height > MAX_RESULT_PIXELS:
        raise ValueError(f"At most {MAX_RESULT_PIXELS:,} pixels.")
    return width, height


def normal_size(text: str | None) -> str | None:
    """The stored form of a result size ("1800x1200"), or None."""
    size = parse_size(text)
    return f"{size[0]}x{size[1]}" if size else None


def plan_for(
    slot: Slot,
    photo_size: tuple[int, int] | None,
    long_side_pixels: int,
    quality: int,
    overlay: Path | None,
    share_url: str | None = None,
) -> ShapePlan | None:
    """The shaping plan of a result, or None when the result is answered as returned (today's path).

    `share_url`: the guest page's address, printed as a QR code when the slot's `share.qr` is on."""
    qr = qr_mark(slot, share_url)
    shape = slot.result_shape if slot.result_shape in SHAPES else "match_photo"
    fixed = None
    if shape == "fixed":
        try:
            fixed = parse_size(slot.result_size)
        except ValueError:
            fixed = None
        if fixed is None:  # validated on save; an old or hand-edited row falls back to the photo's shape
            shape = "match_photo"
    if shape == "match_photo" and photo_size is None:
        shape = "as_returned"
    if shape == "as_returned" and overlay is None and qr is None:
        return None
    return ShapePlan(
        shape=shape,
        output_format=slot.output_format,
        quality=quality,
        photo_size=photo_size,
        fixed_size=fixed,
        long_side_pixels=long_side_pixels,
        overlay=str(overlay) if overlay is not None else None,
        overlay_sha256=slot.overlay_sha256,
        qr=qr,
    )


def qr_mark(slot: Slot, share_url: str | None) -> QrMark | None:
    """The slot's QR settings for this page's address, or None (off, or no address to point at)."""
    share = slot.share or {}
    if not share_url or not share.get("qr"):
        return None
    corner = share.get("corner") if share.get("corner") in CORNERS else "bottom_right"
    try:
        size = float(share.get("size") or 0.12)
    except (TypeError, ValueError):
        size = 0.12
    return QrMark(share_url, str(corner), size, str(share.get("label") or ""))


def result_aspect(slot: Slot, photo_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The aspect the result will be cut to (providers that take a shape are asked for the nearest)."""
    fixed = _fixed_size(slot)
    if fixed is not None:
        return fixed
    if slot.result_shape == "as_returned":
        return None
    return photo_size


def _fixed_size(slot: Slot) -> tuple[int, int] | None:
    """A fixed-shape slot's size as set; None for other shapes (or a size the slot's save check missed)."""
    if slot.result_shape != "fixed":
        return None
    try:
        return parse_size(slot.result_size)
    except ValueError:
        return None


def print_size(slot: Slot, photo_size: tuple[int, int] | None, long_side_pixels: int) -> tuple[int, int] | None:
    """The size the shaping step will answer the result in (what an AI upscale must reach): a fixed size
    exactly as set, whatever its long side; the photo's size with its long side at most `long_side_pixels`;
    None when the result is answered as returned (or the photo's size is unknown)."""
    fixed = _fixed_size(slot)
    if fixed is not None:
        return fixed  # shaping answers it as set
    if slot.result_shape == "as_returned" or photo_size is None:
        return None
    return capped_size(photo_size, long_side_pixels)
