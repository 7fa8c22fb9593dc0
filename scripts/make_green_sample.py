"""Make `samples/green-screen-portrait.jpg`: the packaged portrait shot "in front of a green screen".

The background slot card's live preview (issue 24) keys this photo when the operator gives none. The
portrait (samples/astronaut-portrait.jpg) is cut out once with the offline person model and laid on a
synthetic screen with uneven light, sensor noise and green spill on the subject's edge, like
tests/local/test_green_screen.py does. Run once; the output is committed (deterministic seed).

    PYTHONPATH=src python scripts/make_green_sample.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from boothgate.local import background, pixels

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "boothgate" / "samples"
SCREEN = np.array((52, 177, 72), np.float32)
HEIGHT = 800  # a 3:2 landscape frame like a booth camera's, 1200×800: the preview renders at most ~0.5 MP


def main() -> None:
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
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.8 + 0.3 * (1 - (xx / w + yy / h) / 2)
    screen = np.clip(SCREEN[None, None, :] * light[..., None], 0, 255)
    edge = cv2.GaussianBlur((truth > 0.5).astype(np.float32), (31, 31), 0)
    near_edge = (edge * (1 - edge) * 4)[..., None]
    subject = portrait.astype(np.float32) * (1 - 0.35 * near_edge) + SCREEN * 0.35 * near_edge
    a = truth[..., None]
    shot = np.clip(subject * a + screen * (1 - a) + rng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)
    (SAMPLES / "green-screen-portrait.jpg").write_bytes(pixels.encode_jpeg(shot, 88))


if __name__ == "__main__":
    main()
