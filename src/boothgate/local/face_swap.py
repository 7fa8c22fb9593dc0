"""Classical face swap: the guest's face from the photo onto the largest face of the template.

Face mesh landmarks on both faces → Delaunay triangles on the template's points → each triangle of the
guest's face warped onto the template → colour matched in LAB → Poisson-blended (`seamlessClone`) on a
crop of at most 1024 px → feathered back into the full-size template. The template's mouth interior is
kept (the guest's teeth on a closed template mouth tear it).

It is a novelty effect, and honest about it: a photo without a usable face is refused with 422 and a
reason the guest can act on (no face, too small, cut by the frame) instead of a smeared print.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from boothgate.errors import BoothError, ProviderNotConfigured
from boothgate.local import faces, pixels

CLONE_LONG_SIDE = 1024
# Poisson blending only adds a smooth colour "membrane" to the warped face, so it is solved at this size
# and the membrane scaled up: the same look for a fifth of the time (seamlessClone was 70 % of a swap).
MEMBRANE_LONG_SIDE = 400
CROP_PAD_FACES = 0.3  # room around the template's face for the blend to fade out
# The whole head must be in the photo: the detector's box (eyebrows to chin) plus this much forehead
# above and cheek/jaw on the other sides must stay inside the frame.
EDGE_ABOVE, EDGE_SIDES, EDGE_BELOW = 0.45, 0.1, 0.1
# The inner lip line of mediapipe's 468-point face mesh (a closed loop).
# At most this many faces of a group are swapped (each costs a mesh and a blend).
MAX_FACES = 8
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)


class FaceNotUsable(BoothError):
    """The guest's photo has no face the swap can use (422): the message says why."""

    status, code = 422, "face_not_usable"


class NoFace(FaceNotUsable):
    code = "no_face"


class FaceTooSmall(FaceNotUsable):
    code = "face_too_small"


class FaceAtEdge(FaceNotUsable):
    code = "face_at_edge"


class ReferenceWithoutFace(ProviderNotConfigured):
    """The slot's template has no face to swap into: the operator must change the reference (503)."""

    code = "reference_without_face"


def guest_faces(photo: np.ndarray, min_face_pixels: int) -> tuple[list[tuple[np.ndarray, int]], list[str]]:
    """Every usable face of the guests, left to right (landmarks, width), and why the others were not.
    Raises the largest face's reason when none is usable: the booth's answer says what to change."""
    found = faces.unclipped_faces(photo)
    if not found:
        raise NoFace("No face was found in the photo: the offline face swap needs a face looking at the camera.")
    usable: list[tuple[float, np.ndarray, int]] = []
    skipped: list[str] = []
    first_error: FaceNotUsable | None = None
    for box in found[:MAX_FACES]:
        try:
            points, width = _usable(photo, box, min_face_pixels)
        except FaceNotUsable as exc:
            first_error = first_error or exc
            skipped.append(f"{exc.code} at x={box[0]:.0f}")
            continue
        usable.append((box[0], points, width))
    if not usable:
        assert first_error is not None
        raise first_error
    usable.sort(key=lambda item: item[0])
    return [(points, width) for _, points, width in usable], skipped


def _usable(
    photo: np.ndarray, found: tuple[float, float, float, float], min_face_pixels: int
) -> tuple[np.ndarray, int]:
    h, w = photo.shape[:2]
    fx, fy, fw, fh = found
    if fw < min_face_pixels:
        raise FaceTooSmall(
            f"The face in the photo is {fw:.0f} px wide; the offline face swap needs at least {min_face_pixels} px. "
            "Step closer to the camera."
        )
    if (
        fx - EDGE_SIDES * fw < 0
        or fx + (1 + EDGE_SIDES) * fw > w
        or fy - EDGE_ABOVE * fh < 0
        or fy + (1 + EDGE_BELOW) * fh > h
    ):
        raise FaceAtEdge("The face in the photo touches the edge of the frame: the whole head must be in the picture.")
    box = (max(0, round(fx)), max(0, round(fy)), round(fw), round(fh))
    points = faces.landmarks(photo, box)
    if points is None:
        raise NoFace("The face in the photo could not be mapped: the offline face swap needs a face looking ahead.")
    return points, round(fw)


def _template_faces(template: np.ndarray) -> list[np.ndarray]:
    """The template's faces that the mesh can map, left to right."""
    mapped = []
    for box in faces.find_faces(template)[:MAX_FACES]:
        points = faces.landmarks(template, box)
        if points is not None:
            mapped.append((box[0], points))
    if not mapped:
        raise ReferenceWithoutFace(
            "The slot's reference has no face the offline engine can find: choose a template with one clear face."
        )
    mapped.sort(key=lambda item: item[0])
    return [points for _, points in mapped]


def _triangles(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Delaunay triangles over the points, as index triples into `points`."""
    subdiv = cv2.Subdiv2D((0, 0, width, height))
    subdiv.insert([(float(x), float(y)) for x, y in points])
    corners = np.asarray(subdiv.getTriangleList()).reshape(-1, 3, 2).astype(np.float32)
    distance = ((corners.reshape(-1, 1, 2) - points[None]) ** 2).sum(axis=-1)
    nearest = distance.argmin(axis=1)
    exact = distance[np.arange(len(nearest)), nearest] < 1.0  # Subdiv2D's outer helper vertices match nothing
    keep = exact.reshape(-1, 3).all(axis=1)
    return np.asarray(nearest.reshape(-1, 3)[keep])


def _warp_triangle(source: np.ndarray, target: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    sx, sy, sw, sh = cv2.boundingRect(src)
    dx, dy, dw, dh = cv2.boundingRect(dst)
    if sw < 1 or sh < 1 or dw < 1 or dh < 1:
        return
    patch = source[sy : sy + sh, sx : sx + sw]
    if patch.shape[0] != sh or patch.shape[1] != sw:
        return  # reaches past the photo: cannot happen for a face that passed the edge check
    matrix = cv2.getAffineTransform((src - (sx, sy)).astype(np.float32), (dst - (dx, dy)).astype(np.float32))
    warped = cv2.warpAffine(patch, matrix, (dw, dh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    inside = np.zeros((dh, dw), np.uint8)
    cv2.fillConvexPoly(inside, np.round(dst - (dx, dy)).astype(np.int32), (1,))
    region = target[dy : dy + dh, dx : dx + dw]
    np.copyto(
        region,
        warped[: region.shape[0], : region.shape[1]],
        where=inside[: region.shape[0], : region.shape[1], None] > 0,
    )


def _match_colour(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift the source's LAB statistics inside the mask to the target's (skin tone and light)."""
    inside = mask > 0
    src = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    dst = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    for channel in range(3):
        s, d = src[..., channel][inside], dst[..., channel][inside]
        ratio = float(np.clip(d.std() / max(float(s.std()), 1e-3), 0.6, 1.6))  # keep the guest's own features
        src[..., channel] = (src[..., channel] - s.mean()) * ratio + d.mean()
    return cv2.cvtColor(np.clip(src, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _blend(warped: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The warped face Poisson-blended into the target, and a feathered weight for pasting it (0..1).

    Both are worked out at MEMBRANE_LONG_SIDE: the membrane (what blending adds to the face) and the
    feather are smooth, so scaling them up loses nothing, while the face keeps its full detail.
    """
    h, w = mask.shape
    mw, mh = _scaled_size(w, h, MEMBRANE_LONG_SIDE)
    face = np.where(mask[..., None] > 0, warped, target)  # outside the mask the membrane is then 0
    small_face, small_target = pixels.resize(face, mw, mh), pixels.resize(target, mw, mh)
    small_mask = cv2.resize(mask, (mw, mh), interpolation=cv2.INTER_NEAREST)
    small_mask[:2, :] = small_mask[-2:, :] = 0  # seamlessClone needs target pixels around the mask
    small_mask[:, :2] = small_mask[:, -2:] = 0
    bx, by, bw, bh = cv2.boundingRect(small_mask)
    # OpenCV ≥4.11 writes into the mask it is given: hand it a copy.
    center = (bx + bw // 2, by + bh // 2)
    cloned = cv2.seamlessClone(small_face, small_target, small_mask.copy(), center, cv2.NORMAL_CLONE)
    membrane = cv2.subtract(cloned.astype(np.int16), small_face.astype(np.int16))
    membrane = cv2.resize(membrane, (w, h), interpolation=cv2.INTER_LINEAR)
    blended = np.clip(face.astype(np.int16) + membrane, 0, 255).astype(np.uint8)
    # Fade the swapped face into the template over a few percent of the face size.
    size = max(3, round(0.08 * max(bw, bh)) | 1)
    feather = cv2.erode(small_mask, np.ones((size, size), np.uint8))
    feather = cv2.GaussianBlur(feather, (size * 2 + 1, size * 2 + 1), 0).astype(np.float32) / 255.0
    return blended, cv2.resize(feather, (w, h), interpolation=cv2.INTER_LINEAR)


def _scaled_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def swap_face(photo: np.ndarray, template: np.ndarray, min_face_pixels: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The template with the guests' faces, at the template's size: in a group, the guests' faces left to
    right onto the template's faces left to right (as many as both have); the notes say who was not."""
    guests, skipped = guest_faces(photo, min_face_pixels)
    templates = _template_faces(template)
    out = template.copy()
    pairs = list(zip(guests, templates, strict=False))
    for (guest_points, _), template_points in pairs:
        _swap_one(photo, out, guest_points, template_points)
    notes: dict[str, Any] = {
        "guest_face_pixels": guests[0][1],
        "template_faces": len(templates),
        "faces_swapped": len(pairs),
    }
    if len(guests) > len(templates):
        skipped.append(f"{len(guests) - len(templates)} guest face(s) beyond the template's {len(templates)}")
    if skipped:
        notes["faces_not_swapped"] = skipped
    return out, notes


def _swap_one(photo: np.ndarray, out: np.ndarray, guest_points: np.ndarray, template_points: np.ndarray) -> None:
    """One guest face into one template face of `out`, in place."""
    # A crop around the template's face, scaled to at most CLONE_LONG_SIDE: the blend's cost stays flat.
    th, tw = out.shape[:2]
    x, y, w, h = cv2.boundingRect(template_points.astype(np.int32))
    pad = CROP_PAD_FACES * max(w, h)
    x0, y0 = max(0, int(x - pad)), max(0, int(y - pad))
    x1, y1 = min(tw, int(x + w + pad)), min(th, int(y + h + pad))
    crop = out[y0:y1, x0:x1].copy()
    scale = min(1.0, CLONE_LONG_SIDE / max(crop.shape[:2]))
    cw, ch = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
    small = pixels.resize(crop, cw, ch)
    points = np.clip((template_points - (x0, y0)) * scale, 0, (cw - 1, ch - 1)).astype(np.float32)

    warped = np.zeros_like(small)
    for tri in _triangles(points, cw, ch):
        _warp_triangle(photo, warped, guest_points[tri], points[tri])

    mask = np.zeros((ch, cw), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), (255,))
    cv2.fillPoly(mask, [np.round(points[list(INNER_LIPS)]).astype(np.int32)], (0,))  # the template's own mouth

    warped = _match_colour(warped, small, mask)
    cloned, feather = _blend(warped, small, mask)
    feather = pixels.resize(feather, crop.shape[1], crop.shape[0])
    face = pixels.resize(cloned, crop.shape[1], crop.shape[0])
    out[y0:y1, x0:x1] = cv2.blendLinear(face, crop, feather, 1.0 - feather)
