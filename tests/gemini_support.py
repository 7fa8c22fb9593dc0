"""Test images and checks shared by the Gemini provider and booth tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from boothgate.providers.base import PreparedImage


def gradient(width: int, height: int, tint: tuple[int, int, int]) -> Image.Image:
    """A smooth image (JPEG keeps it nearly exact) with a recognisable colour."""
    ramp = np.linspace(0.6, 1.0, width, dtype=np.float32)[None, :, None]
    pixels = np.broadcast_to(np.array(tint, dtype=np.float32), (height, width, 3)) * ramp
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, quality=95) if fmt == "JPEG" else image.save(out, format=fmt)
    return out.getvalue()


def prepared(width: int, height: int, tint: tuple[int, int, int], fmt: str = "JPEG") -> PreparedImage:
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return PreparedImage(encode(gradient(width, height, tint), fmt), mime, width, height)


PHOTO_TINT = (200, 40, 40)  # reddish guest photo
REFERENCE_TINT = (40, 60, 210)  # bluish reference


def mean_colour(data: bytes, box: tuple[float, float, float, float]) -> tuple[float, float, float]:
    """The mean RGB of a region given as fractions (left, top, right, bottom) of the image."""
    with Image.open(io.BytesIO(data)) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
    h, w = rgb.shape[:2]
    left, top, right, bottom = box
    region = rgb[int(top * h) : int(bottom * h), int(left * w) : int(right * w)]
    r, g, b = region.reshape(-1, 3).mean(axis=0)
    return float(r), float(g), float(b)


def looks_inverted(colour: tuple[float, float, float], tint: tuple[int, int, int]) -> bool:
    """Whether `colour` is the inverse of an image tinted `tint` (somewhere along its 0.6–1.0 ramp)."""
    expected = [255 - c * 0.8 for c in tint]  # the ramp's mean is 0.8
    return all(abs(a - e) < 25 for a, e in zip(colour, expected, strict=True))
