"""Offline styles: named looks that are credible on a print and fast on a CPU.

None of them follows a text prompt. Colour grades are per-channel lookup tables (one pass over the
pixels); noir adds local contrast, grain and a vignette; hdr is OpenCV's detail enhancement; comic is
OpenCV's stylization run at ~1000 px (it is slow per pixel) and scaled back up. Cartoon, pencil sketch
and oil painting were tried and left out: poor at usable speeds.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from boothgate.local import pixels

STYLE_NAMES = ("warm_film", "teal_orange", "faded", "noir", "sepia", "hdr", "comic")

COMIC_LONG_SIDE = 1000  # stylization costs ~0.6 µs of CPU a pixel: 1000 px keeps it near 0.4 s
HDR_LONG_SIDE = 1200  # detailEnhance costs ~1 µs a pixel; the boost found at this size is added at full size
HDR_SKIN_KEEP = 1.0  # share of the detail boost left off skin
_X = np.arange(256, dtype=np.float32) / 255.0


def _table(values: np.ndarray) -> np.ndarray:
    return np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _s_curve(x: np.ndarray, amount: float) -> np.ndarray:
    """Contrast around the middle grey: 0 = identity, 1 = a smoothstep."""
    return x + amount * (x * x * (3 - 2 * x) - x)


def _apply_channels(rgb: np.ndarray, r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    lut = np.stack([_table(r), _table(g), _table(b)], axis=-1).reshape(256, 1, 3)
    return cv2.LUT(rgb, lut)


def _saturation(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Mix with the luminance: below 1 desaturates, above 1 saturates."""
    gray = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(rgb, factor, gray, 1.0 - factor, 0)


def warm_film(rgb: np.ndarray) -> np.ndarray:
    base = _s_curve(_X, 0.45) * 0.92 + 0.06  # lifted blacks, soft whites: printed film
    # a warm cast a guest sees at arm's length: red and green up in the mids, blue down
    graded = _apply_channels(rgb, base * 1.08 + 0.03, base * 1.01 + 0.012, base * 0.78 + 0.01)
    return _saturation(graded, 0.92)


def teal_orange(rgb: np.ndarray) -> np.ndarray:
    # Shadows pull to teal (less red, more blue), highlights to orange (more red, less blue).
    shadow = 1.0 - _X
    r = _s_curve(_X, 0.45) - 0.11 * shadow * shadow + 0.09 * _X * _X
    g = _s_curve(_X, 0.45) + 0.02 * shadow
    b: np.ndarray = _s_curve(_X, 0.45) + 0.15 * shadow * shadow - 0.13 * _X * _X
    return _saturation(_apply_channels(rgb, r, g, b), 1.15)


def faded(rgb: np.ndarray) -> np.ndarray:
    base = _s_curve(_X, -0.25) * 0.78 + 0.13  # low contrast, milky blacks, dimmed whites
    graded = _apply_channels(rgb, base + 0.01, base, base + 0.02)
    return _saturation(graded, 0.7)


def sepia(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    tone = _s_curve(_X, 0.2)
    lut = np.stack([_table(tone * 1.0 + 0.08), _table(tone * 0.9 + 0.04), _table(tone * 0.7)], axis=-1)
    return cv2.LUT(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), lut.reshape(256, 1, 3))


def _vignette(height: int, width: int, strength: float) -> np.ndarray:
    """A float32 multiplier, 1 in the middle falling to 1-strength in the corners (built small, scaled up)."""
    sh, sw = max(2, height // 16), max(2, width // 16)
    y, x = np.ogrid[-1 : 1 : complex(0, sh), -1 : 1 : complex(0, sw)]
    radius = np.sqrt(x * x + y * y) / np.sqrt(2)
    small = (1.0 - strength * np.clip(radius - 0.35, 0, None) ** 1.6 / 0.65**1.6).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def noir(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    tiles = max(2, round(max(gray.shape) / 375))  # the same tile size in pixels whatever the resolution
    gray = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(tiles, tiles)).apply(gray)
    gray = cv2.LUT(gray, _table(_s_curve(_X, 0.6)))
    h, w = gray.shape
    grain = np.empty((h, w), np.float32)
    # A fixed strength in 8-bit levels: visible on a print, not noisy on screen.
    cv2.randn(grain, (0.0,), (7.0,))  # type: ignore[call-overload]
    toned = gray.astype(np.float32) * _vignette(h, w, 0.45) + grain
    out = np.clip(toned, 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def hdr(rgb: np.ndarray) -> np.ndarray:
    """Local detail boosted at a working size and added to the full-size photo — but not on skin, where
    it would deepen every wrinkle; a little global contrast and colour make the look visible there too."""
    h, w = rgb.shape[:2]
    small = pixels.fit_long_side(rgb, HDR_LONG_SIDE)
    enhanced = cv2.detailEnhance(small, sigma_s=10, sigma_r=0.15)
    raw = cv2.subtract(enhanced.astype(np.int16), small.astype(np.int16)).astype(np.float32)
    boost: np.ndarray = raw * (1.0 - HDR_SKIN_KEEP * _skin(small))[..., None]
    if small.shape[:2] != (h, w):
        boost = cv2.resize(boost, (w, h), interpolation=cv2.INTER_LINEAR)
    detailed = np.clip(rgb.astype(np.float32) + boost, 0, 255).astype(np.uint8)
    punch = _apply_channels(detailed, *(_s_curve(_X, 0.22),) * 3)
    return _saturation(punch, 1.15)


def _skin(rgb: np.ndarray) -> np.ndarray:
    """A soft skin mask (0..1) from the YCrCb skin cluster: wide enough for every skin tone under warm or
    cold light, soft so a boundary never shows."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    inside = cv2.inRange(ycrcb, np.array([40, 135, 80], np.uint8), np.array([250, 180, 130], np.uint8))
    size = max(3, round(max(rgb.shape[:2]) / 150) | 1)
    return cv2.GaussianBlur(inside, (size * 2 + 1, size * 2 + 1), 0).astype(np.float32) / 255.0


def comic(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    small = pixels.fit_long_side(rgb, COMIC_LONG_SIDE)
    drawn = cv2.stylization(small, sigma_s=60, sigma_r=0.45)
    return pixels.resize(drawn, w, h)


STYLES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "warm_film": warm_film,
    "teal_orange": teal_orange,
    "faded": faded,
    "noir": noir,
    "sepia": sepia,
    "hdr": hdr,
    "comic": comic,
}


def apply(rgb: np.ndarray, style: str) -> np.ndarray:
    try:
        look = STYLES[style]
    except KeyError:
        raise ValueError(f"unknown offline style {style!r}; choose one of {', '.join(STYLE_NAMES)}") from None
    return look(rgb)
