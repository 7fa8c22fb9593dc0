"""The one function the image workers run for the offline tab.

Module-level, with plain picklable arguments (bytes, strings, ints), so it runs the same on a worker
thread or a worker process; the models it needs are loaded lazily, once per worker (`models`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    """What one offline job needs (plain values only: it may cross a process boundary)."""

    kind: str  # face_swap | background | prompt
    photo: bytes
    reference: bytes | None
    style: str
    long_side: int  # the result's long side is at most this
    quality: int  # JPEG quality of the result
    min_face_pixels: int  # face swap refuses a smaller guest face
    backdrop: str = "auto"  # background: auto | green_screen | blue_screen | any_wall
    key_tolerance: float = 0.5
    key_feather: float = 0.5
    key_spill: float = 0.6
    subject_position: str = "keep"  # background: keep | left | center | right
    subject_scale: float = 1.0
    safe_margin: float = 0.0


def run(job: Job) -> tuple[bytes, dict[str, Any]]:
    """The result as JPEG bytes and notes for the job record (what ran, how long it took)."""
    # Imported here, in the worker that runs it: the server process never loads OpenCV (~50 MB) for this.
    from boothgate.local import background, face_swap, pixels, styles

    started = time.perf_counter()
    photo = pixels.fit_long_side(pixels.decode(job.photo), job.long_side)
    reference = pixels.fit_long_side(pixels.decode(job.reference), job.long_side) if job.reference else None
    notes: dict[str, Any] = {}
    if job.kind == "background":
        if reference is None:
            raise ValueError("background needs a reference")
        keying = background.Keying(job.backdrop, job.key_tolerance, job.key_feather, job.key_spill)
        placement = background.Placement(job.subject_position, job.subject_scale, job.safe_margin)
        result, notes = background.replace_background(photo, reference, keying, placement)
    elif job.kind == "face_swap":
        if reference is None:
            raise ValueError("face_swap needs a reference")
        # The result is the template's scene, so it has the template's shape.
        result, notes = face_swap.swap_face(photo, reference, job.min_face_pixels)
    elif job.kind == "prompt":
        result = styles.apply(photo, job.style)
        notes = {"style": job.style}
    else:
        raise ValueError(f"unknown kind {job.kind!r}")
    data = pixels.encode_jpeg(result, job.quality)
    notes.update(
        engine_ms=round((time.perf_counter() - started) * 1000),
        result_size=f"{result.shape[1]}x{result.shape[0]}",
    )
    return data, notes
