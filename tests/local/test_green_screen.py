"""Green and blue screen keying on real portraits whose ground truth is known.

A real packaged portrait is cut out once with the person model (that cut-out *is* the truth here), laid on
a synthetic screen with uneven light, noise and the screen's colour spilled on the subject's edge, and
JPEG-compressed like a camera's photo; the key must find the truth again from colour alone.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from boothgate.local import background, chroma, faces, models
from tests import local_photos as photos

pytestmark = pytest.mark.skipif(models.problem() is not None, reason=str(models.problem()))

SCREENS = {"green": (52, 177, 72), "blue": (30, 70, 200)}


def truth_of(portrait: np.ndarray) -> np.ndarray:
    """The person's alpha (0..1) from the person model, with a 1-px soft edge like a real lens gives."""
    work = np.ascontiguousarray(portrait)
    soft, _ = background.person_mask(work)
    mask = background.refine(background.smoothstep(soft), work)
    mask = cv2.resize(mask, (portrait.shape[1], portrait.shape[0]), interpolation=cv2.INTER_LINEAR)
    solid = (mask > 0.5).astype(np.float32)
    return cv2.GaussianBlur(solid, (3, 3), 0)


def on_screen(portrait: np.ndarray, truth: np.ndarray, colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """The portrait shot in front of a screen: light falling off to one corner, sensor noise, the
    screen's colour reflected on the subject's edge (spill), and JPEG at camera quality."""
    rng = np.random.default_rng(seed)
    h, w = truth.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.8 + 0.3 * (1 - (xx / w + yy / h) / 2)  # one corner a third brighter than the other
    screen = np.clip(np.array(colour, np.float32)[None, None, :] * light[..., None], 0, 255)
    subject = portrait.astype(np.float32)
    edge = cv2.GaussianBlur((truth > 0.5).astype(np.float32), (31, 31), 0)
    near_edge = (edge * (1 - edge) * 4)[..., None]  # 1 at the edge, 0 deep inside or outside
    subject = subject * (1 - 0.35 * near_edge) + np.array(colour, np.float32) * 0.35 * near_edge
    a = truth[..., None]
    shot = subject * a + screen * (1 - a) + rng.normal(0, 6, (h, w, 3))
    return photos.decode(photos.jpeg(np.clip(shot, 0, 255).astype(np.uint8), 90))


def edge_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance (px) from each edge pixel of the predicted matte to the true edge."""
    p, t = (predicted > 0.5).astype(np.uint8), (truth > 0.5).astype(np.uint8)
    true_edge = cv2.morphologyEx(t, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    distance = cv2.distanceTransform(1 - true_edge, cv2.DIST_L2, 5)
    predicted_edge = cv2.morphologyEx(p, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
    return float(distance[predicted_edge].mean())


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    p, t = predicted > 0.5, truth > 0.5
    return float((p & t).sum() / (p | t).sum())


@pytest.fixture(scope="module")
def portrait_2mp() -> tuple[np.ndarray, np.ndarray]:
    portrait = photos.grace_hopper(2.35)  # 1203×1410 ≈ 1.7 MP of a real person
    return portrait, truth_of(portrait)


@pytest.mark.parametrize(("screen", "seed"), [("green", 1), ("green", 2), ("blue", 3)])
def test_the_key_finds_the_true_matte_from_colour(
    portrait_2mp: tuple[np.ndarray, np.ndarray], screen: str, seed: int
) -> None:
    portrait, truth = portrait_2mp
    shot = on_screen(portrait, truth, SCREENS[screen], seed)
    key = chroma.find_screen(shot)
    assert key is not None and key.screen == screen
    alpha = chroma.matte(shot, key)
    assert iou(alpha, truth) >= 0.97
    assert edge_error(alpha, truth) <= 2.0


def test_nothing_of_the_screen_survives_on_the_new_background(portrait_2mp: tuple[np.ndarray, np.ndarray]) -> None:
    portrait, truth = portrait_2mp
    shot = on_screen(portrait, truth, SCREENS["green"], 4)
    backdrop = np.zeros_like(shot)
    backdrop[:] = (200, 60, 90)  # a pink wall: any screen green left would show
    result, notes = background.replace_background(shot, backdrop, background.Keying("auto"))
    assert notes["matte"] == "green screen"
    hsv = cv2.cvtColor(result, cv2.COLOR_RGB2HSV)
    greenish = (hsv[..., 0] >= 35) & (hsv[..., 0] <= 90) & (hsv[..., 1] >= 90) & (hsv[..., 2] >= 40)
    outside = cv2.erode((truth < 0.5).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert greenish[outside].mean() == 0.0
    # spill is taken back on the subject too: its edge is not screen-green
    edge = (truth > 0.1) & (truth < 0.9)
    assert greenish[edge].mean() < 0.02


def test_auto_uses_the_person_model_on_an_ordinary_wall() -> None:
    photo = photos.astronaut(2.0)
    assert chroma.find_screen(photo) is None
    _, notes = background.replace_background(photo, photos.coffee(2.0), background.Keying("auto"))
    assert notes["matte"] == "person model"


@pytest.mark.parametrize("backdrop", ["any_wall", "green_screen"])
def test_a_photo_without_a_person_is_refused_not_blended(backdrop: str) -> None:
    empty_screen = np.zeros((900, 1200, 3), np.uint8)
    empty_screen[:] = SCREENS["green"]
    photo = photos.coffee(2.0) if backdrop == "any_wall" else empty_screen
    with pytest.raises(background.NoPerson) as raised:
        background.replace_background(photo, photos.astronaut(), background.Keying(backdrop))
    assert raised.value.status == 422 and raised.value.code == "no_person"


def test_placement_moves_the_subject_feet_down_inside_the_safe_area(
    portrait_2mp: tuple[np.ndarray, np.ndarray],
) -> None:
    portrait, truth = portrait_2mp
    shot = on_screen(portrait, truth, SCREENS["green"], 5)
    wide = np.zeros((shot.shape[0], shot.shape[1] * 2, 3), np.uint8)
    wide[:] = SCREENS["green"]
    wide[:, : shot.shape[1]] = shot  # the guest stands on the left of a wide frame
    backdrop = np.full_like(wide, 128)
    for position, expect in (("right", "right"), ("center", "center"), ("left", "left")):
        placement = background.Placement(position, scale=0.8, margin=0.05)
        result, _ = background.replace_background(wide, backdrop, background.Keying("green_screen"), placement)
        person = np.abs(result.astype(int) - 128).sum(axis=2) > 30
        ys, xs = np.nonzero(person)
        h, w = person.shape
        centre = (xs.min() + xs.max()) / 2 / w
        assert {"left": centre < 0.4, "center": 0.4 <= centre <= 0.6, "right": centre > 0.6}[expect], (position, centre)
        assert xs.min() >= 0.05 * w - 2 and xs.max() <= 0.95 * w + 2  # inside the safe margin
        # the portrait is cut off by the bottom of the frame: it stays anchored there
        assert ys.max() >= h - 3


def test_a_group_keeps_both_people_and_no_ghost_of_a_backdrop_object() -> None:
    from skimage import data

    people, where = photos.two_people()
    canvas = np.full((700, 1700, 3), 128, np.uint8)
    canvas[100:700, 0:1200] = people
    rocket = cv2.resize(data.rocket(), (380, 250))  # a real, high-contrast object behind the guests
    canvas[60:310, 1260:1640] = rocket
    backdrop = np.zeros_like(canvas)
    backdrop[:] = (40, 90, 160)
    result, notes = background.replace_background(canvas, backdrop, background.Keying("any_wall"))
    assert notes["matte"] == "person model"
    changed = np.abs(result.astype(int) - backdrop.astype(int)).sum(axis=2) > 40
    # the object is gone: at most 1 % of its pixels differ from the new background
    assert changed[60:310, 1260:1640].mean() <= 0.01
    # both people stay: the middle of each face is kept
    for name, (x, y, _, _) in where.items():
        alone = photos.astronaut() if name == "astronaut" else photos.grace_hopper()
        fx, fy, fw, fh = faces.find_faces(alone)[0]
        cx, cy = 100 + y + fy + fh // 2, x + fx + fw // 2
        middle = changed[cx - fh // 4 : cx + fh // 4, cy - fw // 4 : cy + fw // 4]
        assert middle.mean() > 0.95, name


# Through the booth: the slot's options reach the engine, and a refusal is the booth's answer.
# TAB and TAB_SETTINGS: what the shared tab rig (tests/conftest.py) reads from this module for that server.
from tests.local.test_local_booth import TAB, TAB_SETTINGS, post, server, slot  # noqa: E402,F401  (the module's server fixture)


async def test_a_green_screen_slot_keys_the_booths_photo(server, portrait_2mp) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    portrait, truth = portrait_2mp
    shot = on_screen(portrait, truth, SCREENS["green"], 6)
    backdrop = np.zeros((900, 1200, 3), np.uint8)
    backdrop[:] = (200, 60, 90)
    await slot(server, 15, "background", backdrop, options={"backdrop": "green_screen", "key_spill": 0.8})
    answer = await post(server, 15, shot)
    assert answer.status == 200, answer.body[:300]
    job = await server.job(answer)
    assert "green screen" in str(job)


async def test_the_booth_gets_no_person_for_an_empty_screen(server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    empty = np.zeros((900, 1200, 3), np.uint8)
    empty[:] = SCREENS["green"]
    await slot(server, 16, "background", photos.coffee(2.0), options={"backdrop": "auto"}, on_failure="error")
    answer = await post(server, 16, empty)
    assert answer.status == 422
    assert b"no_person" in answer.body


def test_built_in_backdrops_are_deterministic_smooth_and_distinct() -> None:
    from boothgate.local import backdrops

    made = {b.name: backdrops.make(b.name, 600, 400) for b in backdrops.BACKDROPS}
    for name, image in made.items():
        assert image.shape == (400, 600, 3) and image.dtype == np.uint8
        assert np.array_equal(image, backdrops.make(name, 600, 400))  # the same on every machine
        assert image.std() > 3  # not a flat colour
    means = [image.reshape(-1, 3).mean(axis=0) for image in made.values()]
    assert min(np.abs(a - b).sum() for i, a in enumerate(means) for b in means[i + 1 :]) > 10


async def test_a_built_in_backdrop_becomes_the_slots_reference_and_is_used(server, portrait_2mp) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    portrait, truth = portrait_2mp
    async with server.api() as client:
        listed = (await client.get("/api/backdrops")).json()
        assert {"bokeh_gold", "studio_grey"} <= {b["name"] for b in listed}
        preview = await client.get(listed[0]["preview_url"])
        assert preview.status_code == 200 and preview.content[:3] == b"\xff\xd8\xff"
        assert (await client.get("/api/backdrops/nope/preview.jpg")).status_code == 404
        await server.configure("local", 17, kind="background", prompt="", result_shape="as_returned")
        used = await client.put("/api/slots/local/17/reference/backdrop", json={"name": "studio_grey"})
        assert used.status_code == 200, used.text
        assert (await client.put("/api/slots/local/17/reference/backdrop", json={"name": "x"})).status_code == 404
    answer = await post(server, 17, on_screen(portrait, truth, SCREENS["green"], 8))
    assert answer.status == 200
    result = photos.decode(answer.body)
    corner = result[:40, :40].reshape(-1, 3).mean(axis=0)
    assert np.abs(corner - np.array([70, 70, 74])).max() < 40  # the studio paper's darker edge, not green
