"""Real photos of people for the offline engine's tests, from wheels the test extras install (no download).

- `astronaut()`: scikit-image's portrait of Eileen Collins (512×512, one face ~105 px wide).
- `grace_hopper()`: matplotlib's sample photo (512×600, one face ~200 px wide).
- `coffee()`: scikit-image's cup of coffee — a real photo without a face.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from matplotlib import cbook
from PIL import Image
from skimage import data


def astronaut(scale: float = 1.0) -> np.ndarray:
    return _scaled(data.astronaut(), scale)


def grace_hopper(scale: float = 1.0) -> np.ndarray:
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return _scaled(np.asarray(im.convert("RGB")), scale)


def coffee(scale: float = 1.0) -> np.ndarray:
    return _scaled(data.coffee(), scale)


def two_people() -> tuple[np.ndarray, dict[str, tuple[int, int, int, int]]]:
    """Astronaut and Grace Hopper side by side on a grey canvas (1200×600), with where each one is."""
    canvas = np.full((600, 1200, 3), 128, np.uint8)
    canvas[88:600, 0:512] = astronaut()
    canvas[0:600, 640:1152] = grace_hopper()
    return canvas, {"astronaut": (0, 88, 512, 512), "grace_hopper": (640, 0, 512, 600)}


def _scaled(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode(data_: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data_)) as im:
        return np.asarray(im.convert("RGB"))


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference per channel value (0–255)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def region(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return rgb[y : y + h, x : x + w]


def detail(gray: np.ndarray) -> np.ndarray:
    """The fine structure of a grey image (colour and light removed): what a face's identity is made of."""
    g = gray.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), 3)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
