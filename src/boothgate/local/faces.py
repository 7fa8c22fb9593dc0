"""Faces: where they are (mediapipe's full-range detector) and their 468 landmarks (face mesh).

`detect_faces` is the public entry other features call (a face-aware crop); it answers [] when there
is no face or when the engine is not available, so callers never need to know about mediapipe.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from boothgate.local import models, pixels

Box = tuple[int, int, int, int]  # x, y, width, height in image pixels

# The detector looks at 192×192 anyway; a bigger input only costs resize time.
DETECT_LONG_SIDE = 1280
# The mesh needs the face to fill most of its input: crop this many face widths around the face.
MESH_CROP_FACES = 1.9
MESH_LONG_SIDE = 512


def detect_faces(image: Image.Image) -> list[Box]:
    """Faces in a Pillow image as (x, y, w, h) boxes, largest first; [] when none or no engine."""
    if models.problem() is not None:
        return []
    try:
        return find_faces(np.asarray(image.convert("RGB")))
    except models.EngineUnavailable:
        return []


def find_faces(rgb: np.ndarray, fine: bool = False) -> list[Box]:
    """Faces in an RGB array, largest first, clipped to the image (`fine`: see `unclipped_faces`)."""
    h, w = rgb.shape[:2]
    boxes: list[Box] = []
    for fx, fy, fw, fh in unclipped_faces(rgb, fine):
        x0, y0 = max(0, round(fx)), max(0, round(fy))
        x1, y1 = min(w, round(fx + fw)), min(h, round(fy + fh))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            boxes.append((x0, y0, x1 - x0, y1 - y0))
    return boxes


def unclipped_faces(rgb: np.ndarray, fine: bool = False) -> list[tuple[float, float, float, float]]:
    """Faces as the detector sees them, largest first: a box may reach past the frame when the face is cut.

    The detector squeezes its input to 192×192, so in a wide group photo each face shrinks past what it
    finds; a frame wider (or taller) than TILE_ASPECT is also searched in overlapping square tiles.
    `fine` also searches squares of half the short side when the frame is a group (two faces or more
    found, none a close-up): a guest at the back or a child, with a face under ~8 % of the short side,
    is found there (measured: faces of 2.5 % of a 3:2 frame's width, missed without it)."""
    h, w = rgb.shape[:2]
    boxes = _detect(rgb, 0, 0, w, h)
    short, long = min(h, w), max(h, w)
    if long > TILE_ASPECT * short:
        boxes.extend(_tiles(rgb, short, 0.5))
    if fine and len(_distinct(boxes)) >= 2 and max(b[2] for b in boxes) < FINE_BELOW * short:
        boxes.extend(_tiles(rgb, short // 2, FINE_STEP))
    return _distinct(boxes)


def _distinct(boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Largest first, a box that overlaps a larger one dropped (one face found by two tiles is one face)."""
    boxes = sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)
    kept: list[tuple[float, float, float, float]] = []
    for box in boxes:
        if all(_overlap(box, other) < 0.3 for other in kept):
            kept.append(box)
    return kept


# A frame this much wider than tall (or taller than wide) is also searched in square tiles.
TILE_ASPECT = 1.25
# The fine search runs on a group whose faces are all narrower than this share of the short side (no
# close-up: a selfie of two needs no search for a third). Its squares overlap by a quarter of their side,
# which holds any face the search is for whole in one square; at most FINE_TILES squares (12 at 3:2,
# 15 at 2:1; ~6 ms of CPU each at the detector's 192×192): a bounded cost, paid by group photos only.
FINE_BELOW = 0.3
FINE_STEP = 0.75
FINE_TILES = 24


def _tiles(rgb: np.ndarray, side: int, step_share: float) -> list[tuple[float, float, float, float]]:
    """Faces in overlapping squares of `side` covering the frame, `step_share` of a side apart (farther
    apart when that would take more than FINE_TILES squares: a panorama's cost stays bounded)."""
    h, w = rgb.shape[:2]
    side = max(1, min(side, h, w))

    def starts(length: int, step: int) -> list[int]:
        return sorted({min(start, length - side) for start in range(0, length - side + step, step)})

    step = max(1, round(side * step_share))
    while len(starts(h, step)) * len(starts(w, step)) > FINE_TILES:
        step += max(1, step // 4)
    boxes: list[tuple[float, float, float, float]] = []
    for y0 in starts(h, step):
        for x0 in starts(w, step):
            boxes.extend(_detect(rgb[y0 : y0 + side, x0 : x0 + side], x0, y0, side, side))
    return boxes


def _detect(rgb: np.ndarray, x0: int, y0: int, w: int, h: int) -> list[tuple[float, float, float, float]]:
    small = pixels.fit_long_side(rgb, DETECT_LONG_SIDE)
    result = models.face_detection().process(np.ascontiguousarray(small))
    boxes = []
    for detection in result.detections or []:
        rel = detection.location_data.relative_bounding_box
        boxes.append((x0 + rel.xmin * w, y0 + rel.ymin * h, rel.width * w, rel.height * h))
    return boxes


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over the smaller box: a face found whole and again cut by a tile's edge is one face."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    smaller = min(a[2] * a[3], b[2] * b[3])
    return ix * iy / smaller if smaller > 0 else 0.0


def landmarks(rgb: np.ndarray, box: Box) -> np.ndarray | None:
    """468 (x, y) landmark points in image pixels for the face in `box`, or None when the mesh finds none."""
    h, w = rgb.shape[:2]
    x, y, bw, bh = box
    side = max(bw, bh) * MESH_CROP_FACES
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(w, int(cx + side / 2)), min(h, int(cy + side / 2))
    crop = rgb[y0:y1, x0:x1]
    if crop.size == 0:
        return None
    small = pixels.fit_long_side(crop, MESH_LONG_SIDE)
    result = models.face_mesh().process(np.ascontiguousarray(small))
    if not result.multi_face_landmarks:
        return None
    marks = result.multi_face_landmarks[0].landmark
    points = np.array([(p.x, p.y) for p in marks[:468]], dtype=np.float32)
    points[:, 0] = points[:, 0] * crop.shape[1] + x0
    points[:, 1] = points[:, 1] * crop.shape[0] + y0
    return points
