"""Make `samples/green-screen-portrait.jpg`: the packaged portrait shot "in front of a green screen".

The background slot card's live preview (issue 24) keys this photo when the operator gives none. The
portrait (samples/astronaut-portrait.jpg) is cut out once with the offline person model and laid on a
synthetic screen lit as a real one often is (light falling off to one corner, a vignette, the guest's
soft shadow, folds and weave: `screen_light`), with sensor noise and green spill on the subject's edge.
The unevenness is what makes the card's key_tolerance slider show something: at 0 the shadow stays
(5 % of the screen), at the default 0.5 the key is clean (0.02 % left), at 1 the guest's edge thins;
3.9 % of the preview changes between 0 and 1 (0.7 % on the earlier, evenly lit sample), which
tests/local/test_background_preview.py holds. Run once; the output is committed (deterministic seed).

    PYTHONPATH=src python scripts/make_green_sample.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from boothgate.local import background, pixels

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "boothgate" / "samples"
SCREEN = np.array((52, 177, 72), np.float32)
QUALITY = 88
HEIGHT = 800  # a 3:2 landscape frame like a booth camera's, 1200×800: the preview renders at most ~0.5 MP


def screen_light(h: int, w: int, person: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """How much light falls on each point of the cloth (1 = the key's own level): what a real booth's
    screen looks like when it is lit by the guests' lights rather than by its own.

    - the light comes from the upper left and falls off toward the lower right (~15 % darker there);
    - a vignette darkens the corners (the lens, and the cloth's edges beyond the lamps' cone);
    - the guest throws a soft shadow (a quarter darker) on the cloth, to the right and a little down;
    - the cloth hangs in soft vertical folds with a few diagonal wrinkles, and has a fine weave."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / w, yy / h
    light = 1.08 - 0.16 * (0.6 * u + 0.4 * v)
    light *= 1.0 - 0.14 * (((u - 0.45) / 0.75) ** 2 + ((v - 0.4) / 0.8) ** 2)
    shadow = np.zeros((h, w), np.float32)
    dx, dy = round(0.09 * w), round(0.03 * h)
    shadow[dy:, dx:] = person[: h - dy, : w - dx]
    light *= 1.0 - 0.25 * cv2.GaussianBlur(shadow, (0, 0), 0.035 * w)
    folds = 0.03 * np.sin(2 * np.pi * (u * 5.5 + 0.25 * np.sin(2 * np.pi * v * 1.3)))
    folds += 0.025 * np.sin(2 * np.pi * (u * 2.0 - v * 3.0 + 0.3)) * np.exp(-(((v - 0.3) / 0.25) ** 2))
    weave = cv2.GaussianBlur(rng.normal(0.0, 0.02, (h, w)).astype(np.float32), (0, 0), 1.2)
    return np.clip(light + folds + weave, 0.25, 1.4).astype(np.float32)


def shot_and_truth() -> tuple[np.ndarray, np.ndarray]:
    """The sample photo and the guest's true alpha in it."""
    cut = pixels.fit_long_side(pixels.decode((SAMPLES / "astronaut-portrait.jpg").read_bytes()), HEIGHT)
    soft, _ = background.person_mask(cut)
    mask = background.refine(background.smoothstep(soft), cut)
    mask = cv2.resize(mask, (cut.shape[1], cut.shape[0]), interpolation=cv2.INTER_LINEAR)
    # the guest in the middle of a wider frame, standing on its bottom edge (a half-body shot)
    h, w = HEIGHT, HEIGHT * 3 // 2
    left = (w - cut.shape[1]) // 2
    portrait = np.zeros((h, w, 3), np.uint8)
    portrait[h - cut.shape[0] :, left : left + cut.shape[1]] = cut
    solid = np.zeros((h, w), np.float32)
    solid[h - cut.shape[0] :, left : left + cut.shape[1]] = mask > 0.5
    truth = cv2.GaussianBlur(solid, (3, 3), 0)
    rng = np.random.default_rng(24)
    screen = np.clip(SCREEN[None, None, :] * screen_light(h, w, solid, rng)[..., None], 0, 255)
    edge = cv2.GaussianBlur((truth > 0.5).astype(np.float32), (31, 31), 0)
    near_edge = (edge * (1 - edge) * 4)[..., None]
    subject = portrait.astype(np.float32) * (1 - 0.35 * near_edge) + SCREEN * 0.35 * near_edge
    a = truth[..., None]
    shot = np.clip(subject * a + screen * (1 - a) + rng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)
    return shot, truth


def main() -> None:
    shot, _ = shot_and_truth()
    (SAMPLES / "green-screen-portrait.jpg").write_bytes(pixels.encode_jpeg(shot, QUALITY))


if __name__ == "__main__":
    main()
