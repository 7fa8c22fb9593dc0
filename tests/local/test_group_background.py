"""Background replacement without a screen on a group whose truth is known (issue 24, item 1).

Real packaged portraits (matplotlib's Grace Hopper, scikit-image's astronaut) are each cut out once with
the person model (that cut-out *is* the truth, as in test_green_screen.py), scaled and laid at known
places on a busy background made of real photos without people (coffee, a rocket launch, a tissue
sample, coins, a clock, a horse). One guest is small — a child, or someone at the back — with a face of
2–3 % of the frame's width: the whole frame's pass keeps nothing of that person, and only the fine face
search (squares of half the short side) finds that face, so only then does the person get a crop pass.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from boothgate.local import background, models
from tests import local_photos as photos

pytestmark = pytest.mark.skipif(models.problem() is not None, reason=str(models.problem()))

WIDTH, HEIGHT = 2400, 1600  # a 3:2 booth frame at ~3.8 MP


def truth_of(portrait: np.ndarray) -> np.ndarray:
    """The person's alpha (0..1) from the person model on the portrait alone, with a 1-px soft edge."""
    soft, _ = background.person_mask(portrait)
    mask = background.refine(background.smoothstep(soft), portrait)
    mask = cv2.resize(mask, (portrait.shape[1], portrait.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur((mask > 0.5).astype(np.float32), (3, 3), 0)


def busy_wall(seed: int) -> np.ndarray:
    """Rows of real photos (none of a person) in random widths: edges, faces of things, strong colours."""
    rng = np.random.default_rng(seed)
    grey = [data.coins(), data.clock(), data.horse().astype(np.uint8) * 255]
    tiles = [data.coffee(), data.rocket(), data.immunohistochemistry()] + [np.dstack([g] * 3) for g in grey]
    wall = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    index = 0
    for y in range(0, HEIGHT, 320):
        x = 0
        while x < WIDTH:
            tile_w = int(rng.integers(260, 460))
            tile = cv2.resize(tiles[index % len(tiles)], (tile_w, 320), interpolation=cv2.INTER_AREA)
            wall[y : y + 320, x : x + tile_w] = tile[: HEIGHT - y, : WIDTH - x]
            x, index = x + tile_w, index + 1
    return wall


def group(small_scale: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """The photo, and each guest's true alpha (a guest in front hides what is behind)."""
    guests = [  # (portrait at full size, scale, left edge); feet (the portrait's bottom) on the frame's bottom
        (photos.grace_hopper(), 1.6, 200),
        (photos.astronaut(), 1.8, 1050),
        (np.ascontiguousarray(photos.grace_hopper()[:, ::-1]), small_scale, WIDTH - 20 - round(512 * small_scale)),
    ]
    canvas = busy_wall(24).astype(np.float32)
    layers: list[np.ndarray] = []
    for portrait, scale, left in guests:
        size = (round(portrait.shape[1] * scale), round(portrait.shape[0] * scale))
        alpha = cv2.resize(truth_of(portrait), size, interpolation=cv2.INTER_LINEAR)
        pixels = cv2.resize(portrait, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        where = (slice(HEIGHT - size[1], HEIGHT), slice(left, left + size[0]))
        canvas[where] = pixels * alpha[..., None] + canvas[where] * (1 - alpha[..., None])
        layer = np.zeros((HEIGHT, WIDTH), np.float32)
        layer[where] = alpha
        for behind in layers:
            behind *= 1 - layer
        layers.append(layer)
    shot = photos.decode(photos.jpeg(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), 92))
    return shot, layers


def alpha_of(photo: np.ndarray) -> np.ndarray:
    """The result's alpha, read back from two results: over black and over white."""
    keying = background.Keying("any_wall")
    over_black, _ = background.replace_background(photo, np.zeros_like(photo), keying)
    over_white, notes = background.replace_background(photo, np.full_like(photo, 255), keying)
    assert notes["matte"] == "person model"
    return 1.0 - (over_white.astype(np.float32) - over_black.astype(np.float32)).mean(axis=2) / 255.0


def guest_iou(alpha: np.ndarray, layers: list[np.ndarray], index: int) -> float:
    """IoU of the result with one guest's truth, around that guest, leaving out the other guests."""
    ys, xs = np.nonzero(layers[index] > 0.5)
    box = (slice(max(0, ys.min() - 40), ys.max() + 40), slice(max(0, xs.min() - 40), xs.max() + 40))
    others = np.maximum.reduce([layer for i, layer in enumerate(layers) if i != index])[box] > 0.5
    kept, true = (alpha[box] > 0.5) & ~others, layers[index][box] > 0.5
    return float((kept & true).sum() / (kept | true).sum())


@pytest.mark.parametrize("small_scale", [0.3, 0.45])
def test_a_small_guest_in_a_group_is_kept_whole_and_the_wall_goes(small_scale: float) -> None:
    photo, layers = group(small_scale)
    alpha = alpha_of(photo)
    ious = [guest_iou(alpha, layers, i) for i in range(len(layers))]
    # measured at 0.3 / 0.45: [0.951, 0.690, 0.968] / [0.950, 0.691, 0.987]; the small guest was 0.000
    # at both before the fine face search (nobody found: the whole frame's pass keeps none of her).
    # The astronaut's 0.69 is mostly the helmet she holds: the model keeps only part of it.
    assert ious[2] >= 0.93, ious
    assert ious[0] >= 0.93 and ious[1] >= 0.65, ious
    # the busy wall goes: of what is nobody (beyond a 15-px band around the guests), measured 1.4 % kept
    # (2.2 % when every uncertain region is kept, i.e. without `keep_people`)
    truth = np.maximum.reduce(layers) > 0.5
    nobody = cv2.dilate(truth.astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
    assert (alpha[nobody] > 0.5).mean() <= 0.018
