"""The mask image: what a booth prints instead of a photo or result that failed the NSFW check.

Pure and synchronous (image workers run it). Shaped like the photo, so it drops into the booth's print
layout where the result would have gone. The built-in mask is the project's own: a calm gradient with
an empty frame — nothing alarming on a print, no text in any language.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFilter, ImageOps

from boothgate.imaging.images import UNREADABLE

TOP, BOTTOM = (236, 231, 223), (203, 195, 183)
LINE = (255, 255, 255)


def mask_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The photo's shape with its long side capped at `long_side`."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def builtin(width: int, height: int) -> Image.Image:
    gradient = Image.linear_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    im = Image.composite(Image.new("RGB", (width, height), BOTTOM), Image.new("RGB", (width, height), TOP), gradient)
    draw = ImageDraw.Draw(im)
    unit = min(width, height)
    inset, stroke = round(unit * 0.08), max(2, round(unit * 0.006))
    draw.rounded_rectangle(
        (inset, inset, width - inset, height - inset), radius=round(unit * 0.04), outline=LINE, width=stroke
    )
    r = round(unit * 0.07)
    cx, cy = width // 2, height // 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=LINE, width=stroke)
    return im.filter(ImageFilter.GaussianBlur(max(1, stroke // 2)))


def build(width: int, height: int, long_side: int, source: bytes | None, quality: int = 90) -> bytes:
    """A JPEG mask shaped like a `width`×`height` photo: the operator's image cover-fitted, or the
    built-in one. A damaged operator image falls back to the built-in mask (the guest still gets a print)."""
    size = mask_size(width, height, long_side)
    im: Image.Image | None = None
    if source:
        try:
            with Image.open(io.BytesIO(source)) as opened:
                opened.load()
                im = ImageOps.fit(ImageOps.exif_transpose(opened).convert("RGB"), size, Image.Resampling.LANCZOS)
        except UNREADABLE:
            im = None
    if im is None:
        im = builtin(*size)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
