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

from boothgate.local import background, models, pixels
from tests import local_photos as photos

pytestmark = pytest.mark.skipif(models.problem() is not None, reason=str(models.problem()))

WIDTH, HEIGHT = 2400, 1600  # a 3:2 booth frame at ~3.8 MP
ASTRONAUT_SCALE, ASTRONAUT_LEFT = 1.8, 1050  # the astronaut's place in `group` (she holds her helmet)


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


def group(small_scale: float, wall: int = 24) -> tuple[np.ndarray, list[np.ndarray]]:
    """The photo, and each guest's true alpha (a guest in front hides what is behind); `wall` seeds the
    wall's tiles."""
    guests = [  # (portrait at full size, scale, left edge); feet (the portrait's bottom) on the frame's bottom
        (photos.grace_hopper(), 1.6, 200),
        (photos.astronaut(), ASTRONAUT_SCALE, ASTRONAUT_LEFT),
        (np.ascontiguousarray(photos.grace_hopper()[:, ::-1]), small_scale, WIDTH - 20 - round(512 * small_scale)),
    ]
    canvas = busy_wall(wall).astype(np.float32)
    layers: list[np.ndarray] = []
    for portrait, scale, left in guests:
        size = (round(portrait.shape[1] * scale), round(portrait.shape[0] * scale))
        alpha = cv2.resize(truth_of(portrait), size, interpolation=cv2.INTER_LINEAR)
        image = cv2.resize(portrait, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        where = (slice(HEIGHT - size[1], HEIGHT), slice(left, left + size[0]))
        canvas[where] = image * alpha[..., None] + canvas[where] * (1 - alpha[..., None])
        layer = np.zeros((HEIGHT, WIDTH), np.float32)
        layer[where] = alpha
        for behind in layers:
            behind *= 1 - layer
        layers.append(layer)
    shot = photos.decode(photos.jpeg(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), 92))
    return shot, layers


def helmet_in_group() -> np.ndarray:
    """Where the astronaut's helmet is in `group`: its outline, the circle (395, 460, r 118) of her portrait
    at 1×, scaled and placed as `group` places her (feet on the frame's bottom; the frame cuts it)."""
    helmet = np.zeros((HEIGHT, WIDTH), np.uint8)
    top = HEIGHT - round(512 * ASTRONAUT_SCALE)
    centre = (round(ASTRONAUT_LEFT + 395 * ASTRONAUT_SCALE), round(top + 460 * ASTRONAUT_SCALE))
    cv2.circle(helmet, centre, round(118 * ASTRONAUT_SCALE), 1, -1)
    return helmet > 0


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
    # measured at 0.3 / 0.45: [0.959, 0.897, 0.965] / [0.959, 0.898, 0.978] (the astronaut 0.712 / 0.713
    # without the held pass of `test_what_a_guest_holds_stays_in_front_of_a_busy_wall`; [0.953, 0.687,
    # 0.968] / [0.953, 0.688, 0.987] before the pose veto of `test_no_ghost_of_the_wall_beside_a_head`); the
    # small guest was 0.000 at both before the fine face search (nobody found: the whole frame's pass keeps
    # none of her). What the astronaut still misses is mostly the lower edge of the helmet she holds.
    assert ious[2] >= 0.93, ious
    assert ious[0] >= 0.93 and ious[1] >= 0.87, ious
    # the busy wall goes: of what is nobody (beyond a 15-px band around the guests), measured 0.9 % kept
    # (the same without the held pass; 1.4 % before the pose veto)
    # (2.2 % when every uncertain region is kept, i.e. without `keep_people`)
    truth = np.maximum.reduce(layers) > 0.5
    nobody = cv2.dilate(truth.astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
    assert (alpha[nobody] > 0.5).mean() <= 0.018


def beside_the_head(layers: list[np.ndarray], index: int) -> np.ndarray:
    """The wall within 40 px of one guest's head and shoulders (the top 45 % of that guest), 3 px or more
    from every guest: where the ghost of a cup or a tile behind a head shows."""
    truth = np.maximum.reduce(layers) > 0.5
    own = layers[index] > 0.5
    ys = np.nonzero(own.any(axis=1))[0]
    near = cv2.dilate(own.astype(np.uint8), np.ones((81, 81), np.uint8)) > 0
    band = near & (cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)) == 0)
    band[: max(0, ys.min() - 40)] = False
    band[ys.min() + round(0.45 * (ys.max() - ys.min())) :] = False
    return band


def test_no_ghost_of_the_wall_beside_a_head() -> None:
    """The selfie model keeps a cup or a white tile right beside a head as if it were hair; the pose model,
    run on a crop around each guest, does not see it as that guest, and vetoes it around heads and
    shoulders (`background.pose_pass`)."""
    photo, layers = group(0.3)
    alpha = alpha_of(photo)
    ghosts = [float((alpha[beside_the_head(layers, i)] > 0.5).mean()) for i in (0, 1)]
    # measured [0.011, 0.42] ([0.089, 0.58] without the pose veto: a dark coin tile beside Grace Hopper's
    # cap, the white of a horse tile and a coffee cup beside the astronaut's hair). The cup stays in part:
    # the pose model, too, takes its edge by her hair for hair.
    assert ghosts[0] <= 0.03 and ghosts[1] <= 0.48, ghosts
    truth = np.maximum.reduce(layers) > 0.5
    nobody = cv2.dilate(truth.astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
    # the whole wall: measured 0.89 % kept (1.45 % without the veto)
    assert (alpha[nobody] > 0.5).mean() <= 0.012
    ious = [guest_iou(alpha, layers, i) for i in range(len(layers))]
    assert min(ious[0], ious[2]) >= 0.93 and ious[1] >= 0.87, ious


def test_what_a_guest_holds_stays_though_the_pose_model_does_not_see_it() -> None:
    """The astronaut holds her helmet (a black, shiny sphere, in front of her suit and beyond her outline):
    the selfie model keeps it on a plain studio backdrop, the pose model does not see it as her. The pose
    veto reaches the head and shoulders only, so the helmet stays."""
    photo = photos.astronaut(2.0)  # 1024×1024: her face is ~20 % of the width, so she gets crop passes
    helmet = np.zeros(photo.shape[:2], np.uint8)
    cv2.circle(helmet, (790, 920), 224, 1, -1)  # the helmet's outline is a circle (395, 460, r 118) at 1×
    alpha = alpha_of(photo)
    kept = float((alpha[helmet > 0] > 0.5).mean())
    # measured 0.98 (0.25 when the veto reaches her hands). On the busy wall of `group`, see the next test.
    assert kept >= 0.9, kept


@pytest.mark.parametrize(("small_scale", "mirrored"), [(0.3, False), (0.45, False), (0.3, True)])
def test_what_a_guest_holds_stays_in_front_of_a_busy_wall(small_scale: float, mirrored: bool) -> None:
    """On the busy wall of `group` the selfie model sees the astronaut's helmet neither on the whole frame
    nor on the crop around her face (0.07 of it kept), but does on crops beside her body at chest height
    (`background.held_pass`): the helmet stays, and the wall beside it and around the others still goes.
    Mirrored, the helmet is on her other side."""
    photo, layers = group(small_scale)
    helmet = helmet_in_group()
    near = np.zeros((HEIGHT, WIDTH), bool)  # beside and below her, where the held pass looks (chest down)
    near[HEIGHT * 5 // 8 :, ASTRONAUT_LEFT - 200 : ASTRONAUT_LEFT + round(512 * ASTRONAUT_SCALE) + 200] = True
    if mirrored:
        photo, helmet, near = (np.ascontiguousarray(a[:, ::-1]) for a in (photo, helmet, near))
        layers = [np.ascontiguousarray(layer[:, ::-1]) for layer in layers]
    alpha = alpha_of(photo)
    kept = float((alpha[helmet] > 0.5).mean())
    # measured 0.926 at 0.3 and 0.45, 0.902 mirrored (0.066 / 0.065 / 0.044 without the held pass); the
    # rest is mostly the helmet's lower rim
    assert kept >= (0.87 if mirrored else 0.9), kept
    truth = np.maximum.reduce(layers) > 0.5
    nobody = cv2.dilate(truth.astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
    # measured 2.7 % at 0.3 and 0.45, 3.3 % mirrored: the same without the held pass (most of it the wood
    # tile by her shoulder, orange like her suit)
    assert (alpha[nobody & near] > 0.5).mean() <= 0.036
    assert (alpha[nobody] > 0.5).mean() <= 0.012  # the whole wall (measured 0.9 %; mirrored 0.5 %)


def test_a_coin_taken_for_a_face_holds_nothing() -> None:
    """On another wall the fine face search takes a coin for a small face (a guest at the back). Its held
    crops would be a patch of coins a few dozen pixels wide that the selfie model, upsampling it, takes for
    a person: a face that small gets no held pass, and a held piece is never bigger than a few faces (nor
    one the model is unsure of)."""
    photo, layers = group(0.3, wall=11)
    truth = np.maximum.reduce(layers) > 0.5
    nobody = cv2.dilate(truth.astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
    work = pixels.fit_long_side(photo, background.GUIDE_LONG_SIDE)
    scale = WIDTH / background.SEGMENT_LONG_SIDE  # `people` finds faces at the segmentation size
    found = [tuple(v * scale for v in face) for face in background.people(work)[2]]
    on_the_wall = [(x, y, fw, fh) for x, y, fw, fh in found if not truth[int(y + fh / 2), int(x + fw / 2)]]
    assert on_the_wall, found  # the premise: measured one, 40 px wide at (2032, 1397)
    alpha = alpha_of(photo)
    for x, y, fw, fh in on_the_wall:
        reach = np.zeros_like(nobody)  # below that "face", as far to each side as a held pass looks
        reach[round(y + fh) :, max(0, round(x + fw / 2 - 3 * fw)) : round(x + fw / 2 + 3 * fw)] = True
        # measured 0.0 % kept (80 % with a held pass for it and no limit on a piece's size)
        assert (alpha[nobody & reach] > 0.5).mean() <= 0.05
    # the whole wall: measured 1.70 %, as without the held pass (2.61 % with that coin's held pass; 1.88 %
    # when a held piece need not be mostly sure: pieces of a coffee cup by the astronaut's shoulder)
    assert (alpha[nobody] > 0.5).mean() <= 0.018


def test_no_ghost_of_her_flag_beside_grace_hopper() -> None:
    """The manual's example (scripts/local_engine_examples.py): the astronaut and Grace Hopper side by side,
    2× (2400×1200). Her own backdrop is a US flag at her left: the whole frame's pass keeps its stars at
    0.1–0.65, hanging on her head, so `keep_people` keeps them; the pose veto cuts them loose from her head
    but leaves most of them (they are above and beside its zone). Nowhere solid, that region came out as a
    half-transparent ghost of the flag on the new backdrop; `background.drop_ghosts` drops it."""
    canvas, boxes = photos.two_people()
    photo = cv2.resize(canvas, (2400, 1200), interpolation=cv2.INTER_CUBIC)
    layers = []
    for name, portrait in (("astronaut", photos.astronaut()), ("grace_hopper", photos.grace_hopper())):
        x, y, w, h = (2 * v for v in boxes[name])
        layer = np.zeros(photo.shape[:2], np.float32)
        layer[y : y + h, x : x + w] = cv2.resize(truth_of(portrait), (w, h), interpolation=cv2.INTER_LINEAR)
        layers.append(layer)
    alpha = alpha_of(photo)
    # the flag beside and above her head: her portrait's left 150 px down to 350 px (the stars and the
    # stripes), 40 px or more from her (nearer, her soft hair edge and the gold fringe by it decide: up to
    # 32 px out, measured, the same before and after)
    x, y, _, _ = (2 * v for v in boxes["grace_hopper"])
    flag = np.zeros(photo.shape[:2], bool)
    flag[y : y + 700, x : x + 300] = True
    flag &= cv2.dilate((layers[1] > 0.5).astype(np.uint8), np.ones((81, 81), np.uint8)) == 0
    # measured max 0.01 (0.60 before `drop_ghosts`: alpha > 0.1 on 36 % of the stars' pixels, > 0.5 on 3 %)
    assert float(alpha[flag].max()) <= 0.05, float(alpha[flag].max())
    ious = [guest_iou(alpha, layers, i) for i in range(2)]
    assert min(ious) >= 0.95, ious  # measured [0.989, 0.977], as before `drop_ghosts`
