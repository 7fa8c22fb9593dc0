"""Green and blue screen: the matte from colour, not from a person model.

A screen is recognised from the photo's border (a wide band that is mostly one saturated green or blue);
its colour is sampled there, so uneven light on the cloth is measured rather than guessed. The matte is a
distance in CIE Lab from that colour, with the noise of the border itself setting where "screen" ends:
a pixel as close to the key as most border pixels is screen, one clearly farther is subject, between is a
soft edge. The edge then follows the photo's own edges (a guided filter), the colour of a half-transparent
edge pixel is unmixed from the key (so hair does not keep a green rim), and spill — the screen's light
reflected on hair and shoulders — is pulled back to the neighbouring channels.

Everything here is plain numpy/OpenCV on a uint8 RGB array, so it runs in the image workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The border band sampled for the screen's colour, as a share of the short side.
BORDER_SHARE = 0.04
# A border is a screen when this share of it is one saturated green/blue.
SCREEN_COVERAGE = 0.6
BORDER_STRIDE = 3  # every third border pixel is plenty to measure a screen
MIN_SATURATION = 90  # OpenCV's 0..255 saturation: a grey wall is no screen
MIN_VALUE = 40  # nor is a dark corner
# OpenCV hue (0..180) of each screen colour.
HUES = {"green": (35, 90), "blue": (95, 135)}
# The matte's working size: the key's edge is refined here and scaled to the photo.
WORK_LONG_SIDE = 1536


@dataclass(frozen=True)
class Key:
    screen: str  # green | blue
    lab: np.ndarray  # the screen's colour in Lab (float32, 3)
    spread: float  # the border's own distance from that colour (95th percentile): the screen's noise


def _border(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    band = max(2, round(BORDER_SHARE * min(h, w)))
    top, bottom = rgb[:band].reshape(-1, 3), rgb[h - band :].reshape(-1, 3)
    left, right = rgb[band : h - band, :band].reshape(-1, 3), rgb[band : h - band, w - band :].reshape(-1, 3)
    # The bottom band is left out when the subject stands on it (a half-body portrait always does):
    # it is used only when the other three agree that this is a screen.
    return np.concatenate([top, left, right, bottom])[::BORDER_STRIDE]


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (L 0..100, a and b about -128..127) through OpenCV's 8-bit conversion: ~4× faster than
    the float one and finer than a camera's noise."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab


def find_screen(rgb: np.ndarray, wanted: str | None = None) -> Key | None:
    """The screen behind the subject, from the photo's border, or None when the border is no screen.
    `wanted` ("green"/"blue") insists on one colour; None accepts either."""
    border = _border(rgb)
    hsv = cv2.cvtColor(border.reshape(-1, 1, 3), cv2.COLOR_RGB2HSV).reshape(-1, 3)
    saturated = (hsv[:, 1] >= MIN_SATURATION) & (hsv[:, 2] >= MIN_VALUE)
    for screen, (low, high) in HUES.items():
        if wanted is not None and screen != wanted:
            continue
        on = saturated & (hsv[:, 0] >= low) & (hsv[:, 0] <= high)
        if on.mean() < SCREEN_COVERAGE:
            continue
        lab = _lab(border[on].reshape(-1, 1, 3)).reshape(-1, 3)
        centre = np.median(lab, axis=0).astype(np.float32)
        spread = float(np.percentile(_distance(lab, centre), 95))
        return Key(screen, centre, max(spread, 2.0))
    return None


def _distance(lab: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Lab distance with lightness weighted down: a screen's folds and shadows change L, not its hue."""
    d = lab - key
    return np.sqrt(0.25 * d[..., 0] ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2)


def matte(rgb: np.ndarray, key: Key, tolerance: float = 0.5, feather: float = 0.5) -> np.ndarray:
    """The subject's alpha (float32 0..1) at the photo's size.

    `tolerance` (0..1) moves where screen ends: higher keys out more (a noisier screen), lower keeps more
    (fine hair). `feather` (0..1) widens the soft edge."""
    h, w = rgb.shape[:2]
    scale = min(1.0, WORK_LONG_SIDE / max(h, w))
    work = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    distance = _distance(_lab(work), key.lab)
    inner = key.spread * (1.0 + 1.5 * tolerance)  # as close as the screen's own noise: screen
    outer = inner + 6.0 + 30.0 * feather  # clearly farther: subject
    alpha: np.ndarray = _clean(np.clip((distance - inner) / (outer - inner), 0.0, 1.0).astype(np.float32))
    guide = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    radius = max(1, round((1 + 3 * feather) * max(work.shape[:2]) / 1024))
    alpha = np.clip(cv2.ximgproc.guidedFilter(guide, alpha, radius, (0.01 * 255) ** 2), 0.0, 1.0).astype(np.float32)
    if scale != 1.0:
        alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
    return alpha


def _clean(alpha: np.ndarray) -> np.ndarray:
    """Specks of noise on the screen go (small islands), and so do pin-holes inside the subject."""
    solid = (alpha > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    if count > 1:
        smallest = max(16, int(0.0005 * alpha.size))
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < smallest) + 1
        if small.size:
            alpha[np.isin(labels, small)] = 0.0
    holes = (1 - solid).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=4)
    if count > 1:
        h, w = alpha.shape
        # a hole is a background region that does not touch the border and is small
        for index in range(1, count):
            x, y, bw, bh, area = stats[index]
            touches = x == 0 or y == 0 or x + bw == w or y + bh == h
            if not touches and area < 0.0005 * alpha.size:
                alpha[labels == index] = 1.0
    return alpha


def unmix(rgb: np.ndarray, alpha: np.ndarray, key: Key, spill: float = 0.6) -> np.ndarray:
    """The subject's own colour (uint8): the key's share taken out of half-transparent edge pixels, then
    the screen's reflected light pulled back (green limited by red and blue; blue by red and green).
    Only the pixels that need it are touched: the edge for unmixing, the subject for spill."""
    colour = rgb.copy()
    key_rgb = cv2.cvtColor(key.lab.reshape(1, 1, 3).astype(np.float32), cv2.COLOR_LAB2RGB).reshape(3) * 255.0
    edge = np.flatnonzero(((alpha > 0.02) & (alpha < 0.98)).ravel())
    flat = colour.reshape(-1, 3)
    if edge.size:
        a = alpha.ravel()[edge][:, None]
        fg = (flat[edge].astype(np.float32) - (1.0 - a) * key_rgb) / np.maximum(a, 0.05)
        flat[edge] = np.clip(fg + 0.5, 0, 255).astype(np.uint8)
    if spill > 0:
        # whole-image uint8 channel arithmetic (SIMD): cheaper than picking the subject's pixels out, and
        # what it does to the screen itself is covered by the new background
        r, g, b = cv2.split(colour)
        channel, x, y = (g, r, b) if key.screen == "green" else (b, r, g)
        excess = cv2.subtract(channel, cv2.max(x, y))
        reduced = cv2.subtract(channel, cv2.convertScaleAbs(excess, alpha=spill))
        colour = cv2.merge((r, reduced, b) if key.screen == "green" else (r, g, reduced))
    return colour


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """`foreground` over `background` (uint8 RGB, same size) by `alpha`."""
    weight = np.ascontiguousarray(alpha, dtype=np.float32)
    front = foreground if foreground.dtype == np.uint8 else np.clip(foreground + 0.5, 0, 255).astype(np.uint8)
    return cv2.blendLinear(front, background, weight, 1.0 - weight)
