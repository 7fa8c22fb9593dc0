"""Built-in backgrounds: a few backdrops made by this code, so an operator without files can start.

Each is drawn deterministically from numbers (no files, no licences to track): soft gradients, a bokeh of
out-of-focus lights, and a studio backdrop (a lit paper roll with a vignette). They are plain RGB arrays,
cheap enough to make on demand (~50 ms at 3000×2000) and identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Backdrop:
    name: str
    label: str  # English; the UI translates by name
    kind: str  # gradient | bokeh | studio
    colours: tuple[tuple[int, int, int], ...]


BACKDROPS = (
    Backdrop("gradient_dawn", "Soft gradient: dawn", "gradient", ((250, 208, 196), (166, 193, 238))),
    Backdrop("gradient_mint", "Soft gradient: mint", "gradient", ((212, 252, 236), (120, 190, 200))),
    Backdrop("bokeh_gold", "Bokeh: gold lights", "bokeh", ((28, 20, 14), (255, 196, 110))),
    Backdrop("bokeh_blue", "Bokeh: blue night", "bokeh", ((10, 16, 40), (120, 170, 255))),
    Backdrop("studio_grey", "Studio: grey paper", "studio", ((150, 150, 152), (70, 70, 74))),
    Backdrop("studio_cream", "Studio: cream paper", "studio", ((238, 226, 204), (150, 132, 110))),
)
BY_NAME = {backdrop.name: backdrop for backdrop in BACKDROPS}


def make(name: str, width: int = 3000, height: int = 2000) -> np.ndarray:
    """The backdrop `name` as a uint8 RGB array of the given size. KeyError for an unknown name."""
    backdrop = BY_NAME[name]
    draw = {"gradient": _gradient, "bokeh": _bokeh, "studio": _studio}[backdrop.kind]
    return draw(backdrop, width, height)


def _gradient(backdrop: Backdrop, width: int, height: int) -> np.ndarray:
    top, bottom = (np.array(c, np.float32) for c in backdrop.colours)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = np.clip(0.75 * yy / height + 0.25 * xx / width, 0, 1)[..., None]
    t = t * t * (3 - 2 * t)  # smooth, no visible band
    out = top * (1 - t) + bottom * t
    return _dither(out, seed=1)


def _bokeh(backdrop: Backdrop, width: int, height: int) -> np.ndarray:
    dark, light = (np.array(c, np.float32) for c in backdrop.colours)
    rng = np.random.default_rng(7)
    scale = max(width, height) / 1000
    small_w, small_h = max(1, round(width / scale)), max(1, round(height / scale))  # drawn at ~1000 px
    lights = np.zeros((small_h, small_w), np.float32)
    for _ in range(90):
        r = int(rng.uniform(12, 60))
        cx, cy = int(rng.uniform(0, small_w)), int(rng.uniform(0, small_h * 0.8))
        cv2.circle(lights, (cx, cy), r, (float(rng.uniform(0.25, 0.9)),), -1, cv2.LINE_AA)
    blurred = cv2.GaussianBlur(lights, (0, 0), 3)
    glow = cv2.GaussianBlur(blurred, (0, 0), 40)
    value = np.clip(0.8 * blurred + 0.6 * glow, 0, 1)
    value = cv2.resize(value, (width, height), interpolation=cv2.INTER_CUBIC)[..., None]
    return _dither(dark * (1 - value) + light * value, seed=2)


def _studio(backdrop: Backdrop, width: int, height: int) -> np.ndarray:
    lit, edge = (np.array(c, np.float32) for c in backdrop.colours)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # the light falls on the paper behind the subject's head, a little above the middle
    d = np.sqrt(((xx - 0.5 * width) / width) ** 2 + ((yy - 0.42 * height) / height) ** 2 * 1.6)
    t = np.clip(d / 0.75, 0, 1)[..., None]
    t = t * t
    # the paper's curve to the floor: a soft darker band low in the frame
    floor = np.clip((yy - 0.78 * height) / (0.22 * height), 0, 1)[..., None]
    out = lit * (1 - t) + edge * t
    out = out * (1 - 0.12 * np.sin(np.pi * floor))
    return _dither(out, seed=3)


def _dither(values: np.ndarray, seed: int) -> np.ndarray:
    """uint8 with a little noise: a smooth gradient in 8 bits bands on a print without it."""
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, values.shape[:2])[..., None].astype(np.float32)
    return np.clip(values + noise + 0.5, 0, 255).astype(np.uint8)
