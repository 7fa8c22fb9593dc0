"""Background replacement that keeps every person of a group solid.

Selfie segmentation on the whole frame misses people at the back (they come out as see-through
ghosts), so each detected face gets a second pass on a crop around it and the masks are combined by
their maximum. A smoothstep then pushes the half-transparent areas to 0 or 1, and a guided filter
(guided by the photo) snaps the mask's edge to the real edges of hair and clothes. Limits, with
example images: the manual's "The offline engine" page (docs/offline-engine.md).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from boothgate.local import faces, models, pixels

SEGMENT_LONG_SIDE = 1024  # the model sees 256×256; more only costs resize time
GUIDE_LONG_SIDE = 1536  # the guided filter's working size: edge detail without a full-size filter
SMOOTH_LOW, SMOOTH_HIGH = 0.35, 0.65  # below: background, above: person, between: a soft edge
GUIDE_RADIUS = 8  # at GUIDE_LONG_SIDE; scaled with the working size
GUIDE_EPS = (0.02 * 255) ** 2  # the guide is uint8: edges weaker than ~2 % of full scale are smoothed
MAX_FACE_PASSES = 12
# The crop around a face for its own pass, in face widths: a body below and to both sides.
CROP_WIDTH_FACES, CROP_ABOVE_FACES, CROP_BELOW_FACES = 4.0, 0.8, 4.5
# A face this big already fills the frame: the whole-frame pass has it.
SMALL_FACE_SHARE = 0.22


def _segment(rgb: np.ndarray) -> np.ndarray:
    mask = models.selfie_segmentation().process(np.ascontiguousarray(rgb)).segmentation_mask
    return np.array(mask, dtype=np.float32)  # a writable copy: the graph owns its output buffer


def person_mask(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """A soft person mask (float32 0..1) at segmentation size, and how many faces got their own pass."""
    small = pixels.fit_long_side(rgb, SEGMENT_LONG_SIDE)
    h, w = small.shape[:2]
    mask = _segment(small)
    passes = 0
    for x, y, fw, fh in faces.find_faces(small)[:MAX_FACE_PASSES]:
        if fw > SMALL_FACE_SHARE * w:
            continue
        cx = x + fw / 2
        x0, x1 = max(0, int(cx - CROP_WIDTH_FACES * fw / 2)), min(w, int(cx + CROP_WIDTH_FACES * fw / 2))
        y0, y1 = max(0, int(y - CROP_ABOVE_FACES * fh)), min(h, int(y + fh + CROP_BELOW_FACES * fh))
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        crop_mask = _segment(small[y0:y1, x0:x1]) * _person_shape(x - x0, y - y0, fw, fh, x1 - x0, y1 - y0)
        np.maximum(mask[y0:y1, x0:x1], crop_mask, out=mask[y0:y1, x0:x1])
        passes += 1
    return mask, passes


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


def replace_background(photo: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """The people of `photo` over `reference` (cover-fitted), at the photo's size."""
    h, w = photo.shape[:2]
    work = pixels.fit_long_side(photo, GUIDE_LONG_SIDE)  # one big resize; the segmenter's input comes from it
    soft, passes = person_mask(work)
    mask = refine(smoothstep(soft), work)
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    background = pixels.cover(reference, w, h)
    weight = np.ascontiguousarray(mask, dtype=np.float32)
    result = cv2.blendLinear(photo, background, weight, 1.0 - weight)
    return result, {"face_passes": passes}
