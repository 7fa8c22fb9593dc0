"""Pixels in and out of the offline engine: decode prepared bytes to RGB arrays, resize, encode.

Inputs are already oriented and downscaled by `images.prepare` (no EXIF left to honour); OpenCV decodes
and encodes them faster than Pillow. Arrays are RGB uint8, the order mediapipe expects.
"""

from __future__ import annotations

import cv2
import numpy as np

from boothgate.errors import CorruptImage


def decode(data: bytes) -> np.ndarray:
    """RGB uint8; transparency is flattened onto white (a cut-out reference should not turn black)."""
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if raw is None:
        raise CorruptImage("The offline engine cannot read this image.")
    if raw.dtype != np.uint8:
        raw = cv2.convertScaleAbs(raw, alpha=255.0 / 65535.0)
    if raw.ndim == 2:
        return cv2.cvtColor(raw, cv2.COLOR_GRAY2RGB)
    if raw.shape[2] == 4:
        alpha = raw[:, :, 3:4].astype(np.float32) / 255.0
        white = np.full_like(raw[:, :, :3], 255)
        flat = (raw[:, :, :3] * alpha + white * (1 - alpha)).astype(np.uint8)
        return cv2.cvtColor(flat, cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def fit_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Downscale so the long side is at most `long_side` (never upscale)."""
    h, w = rgb.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width < image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover width×height and crop the middle (like CSS `object-fit: cover`)."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
    scaled = resize(image, sw, sh)
    x, y = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y : y + height, x : x + width])
