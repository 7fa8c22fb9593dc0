"""Background replacement that keeps every person of a group solid.

Selfie segmentation on the whole frame misses people at the back (they come out as see-through
ghosts), so each detected face (searched finely too, so small faces at the back are found) gets a
second pass on a crop around it (its body box) and the masks are combined by their maximum. Around
each head and its shoulders, the pose model's own person mask (on a crop around that face) vetoes what
the selfie model took for hair (a cup or a tile beside the head); lower down it does not, because it
does not see what a guest holds. A smoothstep then pushes the half-transparent areas to 0 or 1, and a
guided filter (guided by the photo) snaps the mask's edge to the real edges of hair and clothes. What a
guest holds in front of a busy wall (a helmet at the chest) the model sees neither on the whole frame nor
on the face's crop, but does on crops beside the body at chest height: a piece of what those add that
touches the person is added (see `held_pass`). Last, a region that is nowhere solid is dropped (see
`drop_ghosts`): half-transparent, it could only be the old backdrop showing through. Limits,
with example images: the manual's "The offline engine" page (docs/offline-engine.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from boothgate.errors import BoothError
from boothgate.local import chroma, faces, models, pixels

SEGMENT_LONG_SIDE = 1024  # the model sees 256×256; more only costs resize time
GUIDE_LONG_SIDE = 1536  # the guided filter's working size: edge detail without a full-size filter
SMOOTH_LOW, SMOOTH_HIGH = 0.35, 0.65  # below: background, above: person, between: a soft edge
GUIDE_RADIUS = 8  # at GUIDE_LONG_SIDE; scaled with the working size
GUIDE_EPS = (0.02 * 255) ** 2  # the guide is uint8: edges weaker than ~2 % of full scale are smoothed
# At most this many faces get their own pass (largest first; 10–20 ms each): a bounded cost for a
# crowd, and a dozen covers the groups a booth frames.
MAX_FACE_PASSES = 12
# The crop around a face for its own pass, in face widths: a body below and to both sides.
CROP_WIDTH_FACES, CROP_ABOVE_FACES, CROP_BELOW_FACES = 4.0, 0.8, 4.5
# A face this big already fills the frame: the whole-frame pass has it.
SMALL_FACE_SHARE = 0.22
# Less person than this share of the frame (and no face) is a photo without a person.
MIN_PERSON_SHARE = 0.01
# The pose model's own person mask, on a wider crop around each of the largest faces, vetoes what the
# selfie model added beside that person (see `pose_pass`): at most this many faces (~70 ms each).
MAX_POSE_PASSES = 6
POSE_WIDTH_FACES, POSE_ABOVE_FACES, POSE_BELOW_FACES = 6.0, 0.8, 7.0
# the pose mask counts as person above POSE_SURE, widened by POSE_GROW face widths (its edge is coarse:
# the selfie model's edge decides inside that margin)
POSE_SURE, POSE_GROW = 0.8, 0.08
# the veto's reach below the face's top, in face heights: the head and the shoulders
POSE_ZONE_BELOW = 2.0
# What a guest holds (see `held_pass`): two crops per face, at chest height and shifted to each side by
# HELD_SHIFT_FACES face widths, HELD_WIDTH_FACES wide, from HELD_ABOVE_FACES below the face's top down as
# far as the face's own crop (CROP_BELOW_FACES). Measured on the busy group wall: the model keeps 0.93 of
# the astronaut's helmet on these crops against 0.02 on the face's crop. The geometry matters: shifted 1.25
# or 1.75 faces, or 3.5 or 4.5 faces wide, some variants of that group fall back to 0.1–0.3 (figures in
# docs/offline-prints.md), so change it only with those measurements.
HELD_SHIFT_FACES, HELD_WIDTH_FACES, HELD_ABOVE_FACES = 1.5, 4.0, 1.0
HELD_REACH_FACES = 3.0  # a held thing is within this many face widths of the face's centre (arm's reach)
# at most this many faces (the largest) get held passes: ~25 ms each at 24 MP on this 2-core machine (two
# selfie passes), so at most ~100 ms a photo
MAX_HELD_PASSES = 4
# faces narrower (px at SEGMENT_LONG_SIDE) get no held pass: their crops are upsampled ≥ 2× and the model
# guesses (a coin taken for a face had a 100×70 px block of wall kept as "held")
HELD_MIN_FACE = 32
# a held piece counts when this share of it is sure (pieces of a coffee cup beside a shoulder, on other
# walls, which the crops take for the arm: 0.0–0.15; the helmet: 0.5–0.98) and it is no bigger than this
# many face areas (the helmet: ~2; that coin's block: ~18)
HELD_SURE_SHARE, HELD_MAX_FACE_AREAS = 0.4, 4.0
# A region without a face is a person only when most of it is this sure (see `keep_people`).
SURE, SURE_SHARE = 0.9, 0.6
BACKDROPS = ("auto", "green_screen", "blue_screen", "any_wall")
POSITIONS = ("keep", "left", "center", "right")


class NoPerson(BoothError):
    """Nobody to put on the new background (422): the slot's on_failure decides what the booth gets."""

    status, code = 422, "no_person"


@dataclass(frozen=True)
class Placement:
    """Where the subject stands on the new background: `keep` leaves it where the camera saw it; left,
    center or right move it there (bottom-anchored) inside a safe margin, scaled by `scale`."""

    position: str = "keep"
    scale: float = 1.0
    margin: float = 0.0  # share of the width and height kept free on each side (a frame, a caption)


@dataclass(frozen=True)
class Keying:
    backdrop: str = "auto"  # auto | green_screen | blue_screen | any_wall
    tolerance: float = 0.5
    feather: float = 0.5
    spill: float = 0.6


def _segment(rgb: np.ndarray) -> np.ndarray:
    mask = models.selfie_segmentation().process(np.ascontiguousarray(rgb)).segmentation_mask
    return np.array(mask, dtype=np.float32)  # a writable copy: the graph owns its output buffer


def person_mask(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """A soft person mask (float32 0..1) at segmentation size, and how many faces got their own pass."""
    mask, passes, _ = people(rgb)
    return mask, passes


def people(rgb: np.ndarray) -> tuple[np.ndarray, int, list[tuple[int, int, int, int]]]:
    """`person_mask`, with only the regions that belong to a person (a face, or connected to one), and
    the faces found (at segmentation size)."""
    small = pixels.fit_long_side(rgb, SEGMENT_LONG_SIDE)
    h, w = small.shape[:2]
    mask = _segment(small)
    passes = 0
    found = faces.find_faces(small, fine=True)  # the fine search finds the faces at the back of a group
    seen, zone = np.zeros((h, w), np.float32), np.zeros((h, w), bool)  # see `pose_pass`
    for index, (x, y, fw, fh) in enumerate(found[:MAX_FACE_PASSES]):
        if fw > SMALL_FACE_SHARE * w:
            continue
        if index < MAX_POSE_PASSES:
            pose_pass(small, (x, y, fw, fh), seen, zone)
        cx = x + fw / 2
        x0, x1 = max(0, int(cx - CROP_WIDTH_FACES * fw / 2)), min(w, int(cx + CROP_WIDTH_FACES * fw / 2))
        y0, y1 = max(0, int(y - CROP_ABOVE_FACES * fh)), min(h, int(y + fh + CROP_BELOW_FACES * fh))
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        crop_mask = _segment(small[y0:y1, x0:x1]) * _person_shape(x - x0, y - y0, fw, fh, x1 - x0, y1 - y0)
        np.maximum(mask[y0:y1, x0:x1], crop_mask, out=mask[y0:y1, x0:x1])
        passes += 1
    kept = keep_people(mask, found)
    # after `keep_people`: a held piece must touch a person it kept, not a ghost of the wall
    for x, y, fw, fh in found[:MAX_HELD_PASSES]:
        if HELD_MIN_FACE <= fw <= SMALL_FACE_SHARE * w:
            held_pass(small, (x, y, fw, fh), kept)
    # inside a body whose pose pass ran, only what some pose pass sees stays
    vetoed = np.where(zone, kept * seen, kept).astype(np.float32)
    # after the veto: it can cut a ghost loose from the head it was kept for (see `drop_ghosts`)
    return drop_ghosts(vetoed), passes, found


def pose_pass(small: np.ndarray, face: tuple[int, int, int, int], seen: np.ndarray, zone: np.ndarray) -> None:
    """The pose model on a crop around this face: `seen` (the maximum over passes) gets where it sees the
    person, `zone` gets where this person can be (their body shape, as `_person_shape` draws it). Inside
    the zone the mask keeps only what some pass sees: the selfie model likes what is beside a head (a cup,
    a white tile) and keeps it as hair; the pose model, which sees one body, mostly does not. When the
    pose model finds nobody, or somebody else (its nose is not in this face's box), nothing changes."""
    h, w = seen.shape
    x, y, fw, fh = face
    cx = x + fw / 2
    x0, x1 = max(0, int(cx - POSE_WIDTH_FACES * fw / 2)), min(w, int(cx + POSE_WIDTH_FACES * fw / 2))
    y0, y1 = max(0, int(y - POSE_ABOVE_FACES * fh)), min(h, int(y + fh + POSE_BELOW_FACES * fh))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return
    result = models.pose().process(np.ascontiguousarray(small[y0:y1, x0:x1]))
    if result.segmentation_mask is None or result.pose_landmarks is None:
        return
    nose = result.pose_landmarks.landmark[0]
    nx, ny = x0 + nose.x * (x1 - x0), y0 + nose.y * (y1 - y0)
    if not (x - fw / 4 <= nx <= x + 1.25 * fw and y - fh / 4 <= ny <= y + 1.25 * fh):
        return
    grow = max(3, round(POSE_GROW * fw) | 1)
    sure = (np.asarray(result.segmentation_mask) > POSE_SURE).astype(np.uint8)
    seen_soft = cv2.GaussianBlur(
        cv2.dilate(sure, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow))).astype(np.float32),
        (grow, grow), 0,
    )  # fmt: skip
    np.maximum(seen[y0:y1, x0:x1], seen_soft, out=seen[y0:y1, x0:x1])
    # only around the head and shoulders: lower down, the hands hold things the pose model does not see
    # as person (a helmet, a bouquet) while the selfie model does
    bottom = min(y1, round(y + POSE_ZONE_BELOW * fh))
    if bottom > y0:
        shape = _person_shape(x - x0, y - y0, fw, fh, x1 - x0, bottom - y0) > 0.05
        zone[y0:bottom, x0:x1] |= shape


def held_pass(small: np.ndarray, face: tuple[int, int, int, int], kept: np.ndarray) -> None:
    """Adds to `kept` what this guest holds: the selfie model on two crops beside the body at chest height
    (see HELD_SHIFT_FACES), where it sees a held helmet as part of the person as it does on a plain
    backdrop. Of what those crops add within arm's reach, a piece that touches a kept person, is mostly
    sure and is not bigger than a few faces is taken, at the crops' own values; around the head and
    shoulders the pose veto still decides."""
    h, w = kept.shape
    x, y, fw, fh = face
    cx = x + fw / 2
    top, bottom = max(0, int(y + HELD_ABOVE_FACES * fh)), min(h, int(y + fh + CROP_BELOW_FACES * fh))
    left, right = max(0, int(cx - HELD_REACH_FACES * fw)), min(w, int(cx + HELD_REACH_FACES * fw))
    if bottom - top < 16 or right - left < 16:
        return
    held = np.zeros((bottom - top, right - left), np.float32)
    for side in (-1, 1):
        centre = cx + side * HELD_SHIFT_FACES * fw
        x0, x1 = max(0, int(centre - HELD_WIDTH_FACES * fw / 2)), min(w, int(centre + HELD_WIDTH_FACES * fw / 2))
        if x1 - x0 < 16:
            continue
        crop = _segment(small[top:bottom, x0:x1])
        a0, a1 = max(x0, left), min(x1, right)  # the crop's part within reach
        if a1 > a0:
            np.maximum(held[:, a0 - left : a1 - left], crop[:, a0 - x0 : a1 - x0], out=held[:, a0 - left : a1 - left])
    region = kept[top:bottom, left:right]
    count, labels = cv2.connectedComponents(((held > 0.5) & (region <= 0.5)).astype(np.uint8), connectivity=8)
    if count <= 1:
        return
    person = cv2.dilate((region > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)).ravel() > 0
    touches = np.bincount(labels.ravel(), weights=person, minlength=count) > 0
    sure = np.bincount(labels.ravel(), weights=(held > SURE).ravel(), minlength=count)
    area = np.maximum(np.bincount(labels.ravel(), minlength=count), 1)
    take = touches & (sure / area >= HELD_SURE_SHARE) & (area <= HELD_MAX_FACE_AREAS * fw * fh)
    take[0] = False
    if take.any():
        np.maximum(region, np.where(take[labels], held, 0.0), out=region)


def keep_people(mask: np.ndarray, found: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Per region, not per pixel: a region of the mask that holds no face and that the model is not sure
    of is its mistake (a flag, a poster, a lamp: the half-transparent ghosts); a region the model is sure
    of stays (a guest whose face is too small to be found), and so does whatever is connected to a face
    (what a person holds). Without any face the mask is left as it is (the caller decides)."""
    if not found:
        return mask
    solid = (mask > 0.25).astype(np.uint8)
    count, labels = cv2.connectedComponents(solid, connectivity=8)
    # the share of each region the model is sure of
    sure = np.bincount(labels.ravel(), weights=(mask > SURE).ravel(), minlength=count)
    size = np.maximum(np.bincount(labels.ravel(), minlength=count), 1)
    keep = sure / size >= SURE_SHARE
    h, w = mask.shape
    for x, y, fw, fh in found:
        cx, cy = min(w - 1, int(x + fw / 2)), min(h - 1, int(y + fh / 2))
        box = labels[max(0, y) : min(h, y + fh), max(0, x) : min(w, x + fw)]
        keep[np.unique(box)] = True
        keep[labels[cy, cx]] = True
    keep[0] = False
    return np.where(keep[labels], mask, np.minimum(mask, 0.0)).astype(np.float32)


def drop_ghosts(mask: np.ndarray) -> np.ndarray:
    """Per region, after the pose veto: a region of what the smoothstep keeps (above SMOOTH_LOW) with no
    pixel the smoothstep makes solid (above SMOOTH_HIGH) is background. Nothing of it could ever be person;
    it would only come out half-transparent (the old backdrop showing through the new one). `keep_people`
    keeps such a region while it hangs on a head; the veto then cuts it loose. Measured on the manual's
    example: the flag's stars beside Grace Hopper's cap, mask 0.35–0.57 after the veto and no pixel above
    0.65, kept alpha > 0.1 on 36 % of the star pixels (> 0.5 on 3 %); 0 % once dropped."""
    count, labels = cv2.connectedComponents((mask > SMOOTH_LOW).astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    solid = np.bincount(labels.ravel(), weights=(mask > SMOOTH_HIGH).ravel(), minlength=count) > 0
    solid[0] = True  # below SMOOTH_LOW: the smoothstep makes it 0 anyway
    return np.where(solid[labels], mask, 0.0).astype(np.float32)


def _person_shape(x: float, y: float, fw: float, fh: float, width: int, height: int) -> np.ndarray:
    """Where a person with this face can be inside its crop (0..1, soft-edged): a head (with hair or a hat)
    around the face, and shoulders and body widening below the chin. A crop's own pass may only add
    person there: on a tight crop the model also likes things beside a head (a flag, a lamp)."""
    shape = np.zeros((height, width), np.float32)
    cx, cy = x + fw / 2, y + fh / 2
    head_axes = (max(1, round(0.85 * fw)), max(1, round(1.15 * fh)))
    cv2.ellipse(shape, (round(cx), round(cy - 0.15 * fh)), head_axes, 0, 0, 360, (1.0,), -1)
    chin = y + 0.9 * fh
    body = np.array(
        [[cx - 0.7 * fw, chin], [cx + 0.7 * fw, chin], [cx + 2.0 * fw, chin + 1.0 * fh],
         [cx + 2.0 * fw, height], [cx - 2.0 * fw, height], [cx - 2.0 * fw, chin + 1.0 * fh]]
    )  # fmt: skip
    cv2.fillPoly(shape, [np.round(body).astype(np.int32)], (1.0,))
    soft = max(3, round(0.25 * fw) | 1)
    return cv2.GaussianBlur(shape, (soft, soft), 0)


def smoothstep(mask: np.ndarray, low: float = SMOOTH_LOW, high: float = SMOOTH_HIGH) -> np.ndarray:
    t = np.clip((mask - low) / (high - low), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def refine(mask: np.ndarray, work: np.ndarray) -> np.ndarray:
    """The mask at the size of `work` (the photo at working size), its edges following the photo's.

    The guide is the photo's luminance: a colour guide follows hue edges too but costs ~4× (measured).
    """
    guide = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    gh, gw = guide.shape[:2]
    up = cv2.resize(mask, (gw, gh), interpolation=cv2.INTER_LINEAR)
    radius = max(2, round(GUIDE_RADIUS * max(gh, gw) / GUIDE_LONG_SIDE))
    refined = cv2.ximgproc.guidedFilter(guide, up, radius, GUIDE_EPS)
    return np.clip(refined, 0.0, 1.0)


def replace_background(
    photo: np.ndarray, reference: np.ndarray, keying: Keying = Keying(), placement: Placement = Placement()
) -> tuple[np.ndarray, dict[str, Any]]:
    """The people of `photo` over `reference` (cover-fitted), at the photo's size.

    A green or blue screen (asked for, or found on the border with `auto`) is keyed by colour; any other
    wall goes through the person model. Nobody in the photo is a `NoPerson` refusal, never a blend."""
    h, w = photo.shape[:2]
    notes: dict[str, Any] = {}
    key = None
    if keying.backdrop != "any_wall":
        wanted = {"green_screen": "green", "blue_screen": "blue"}.get(keying.backdrop)
        key = chroma.find_screen(photo, wanted)
        if key is None and wanted is not None:
            notes["screen"] = f"no {wanted} screen on the border: the person model keyed it"
    if key is not None:
        alpha = chroma.matte(photo, key, keying.tolerance, keying.feather)
        foreground: np.ndarray = chroma.unmix(photo, alpha, key, keying.spill)
        notes["matte"] = f"{key.screen} screen"
        if float((alpha > 0.5).mean()) < MIN_PERSON_SHARE:
            raise NoPerson("Nobody is in front of the screen: there is no person to put on the background.")
    else:
        work = pixels.fit_long_side(photo, GUIDE_LONG_SIDE)  # one big resize; the segmenter's input comes from it
        soft, passes, found = people(work)
        if not found or float((soft > 0.5).mean()) < MIN_PERSON_SHARE:
            raise NoPerson("No person was found in the photo: there is nobody to put on the background.")
        mask = refine(smoothstep(soft), work)
        alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        foreground = photo
        notes.update(matte="person model", face_passes=passes)
    background = pixels.cover(reference, w, h)
    if placement.position != "keep" or placement.scale != 1.0:
        foreground, alpha = place(foreground, alpha, placement)
    return chroma.composite(foreground, alpha, background), notes


def place(foreground: np.ndarray, alpha: np.ndarray, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """The subject (its alpha's box) moved and scaled on a canvas of the same size, feet on the bottom
    edge of the safe area (or where they were, when the photo cuts the subject off at the bottom)."""
    h, w = alpha.shape
    ys, xs = np.nonzero(alpha > 0.5)
    if ys.size == 0:
        return foreground, alpha
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    margin_x, margin_y = round(placement.margin * w), round(placement.margin * h)
    box_w, box_h = max(1, w - 2 * margin_x), max(1, h - 2 * margin_y)
    scale = placement.scale * min(1.0, box_w / (x1 - x0), box_h / (y1 - y0))
    sub_w, sub_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    sub_fg = cv2.resize(np.ascontiguousarray(foreground[y0:y1, x0:x1], np.float32), (sub_w, sub_h))
    sub_alpha = cv2.resize(np.ascontiguousarray(alpha[y0:y1, x0:x1]), (sub_w, sub_h))
    cut_at_bottom = y1 >= h - 2
    bottom = h if cut_at_bottom else h - margin_y
    left = {
        "left": margin_x,
        "center": (w - sub_w) // 2,
        "right": w - margin_x - sub_w,
        "keep": round((x0 + x1) / 2 - sub_w / 2),
    }[placement.position]
    canvas_fg = np.zeros((h, w, 3), np.float32)
    canvas_alpha = np.zeros((h, w), np.float32)
    top = bottom - sub_h
    # the part of the subject that falls on the canvas
    cx0, cy0 = max(0, left), max(0, top)
    cx1, cy1 = min(w, left + sub_w), min(h, top + sub_h)
    if cx1 > cx0 and cy1 > cy0:
        canvas_fg[cy0:cy1, cx0:cx1] = sub_fg[cy0 - top : cy1 - top, cx0 - left : cx1 - left]
        canvas_alpha[cy0:cy1, cx0:cx1] = sub_alpha[cy0 - top : cy1 - top, cx0 - left : cx1 - left]
    return canvas_fg, canvas_alpha
