"""The background slot card's live preview (issue 24): the real offline background path on a small copy.

Module-level and with plain arguments, so it runs on an image worker process like `local.engine.run`. The
photo (the operator's, or the packaged green-screen sample) and the slot's background are decoded scaled
down to `PREVIEW_PIXELS` first, so a slider's move answers in a fraction of a second.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boothgate.imaging import images

if TYPE_CHECKING:
    import numpy as np

PREVIEW_PIXELS = 500_000  # ~870×580 at 3:2: enough to judge a key's edge and the placement on a card
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "green-screen-portrait.jpg"
DEFAULT_BACKDROP = "studio_grey"  # a slot without a background yet is previewed on a built-in one


@functools.cache
def sample_photo() -> bytes:
    return SAMPLE.read_bytes()


def _rgb(data: bytes, max_source_pixels: int) -> np.ndarray:
    import numpy as np

    with images.decode_scaled(data, PREVIEW_PIXELS, max_source_pixels) as im:
        return np.asarray(im.convert("RGB"))


def render(photo: bytes, reference: bytes | None, options: dict[str, Any], max_source_pixels: int) -> bytes:
    """`photo` keyed (or cut out) onto `reference` with the slot's background `options`, as a JPEG."""
    import numpy as np

    from boothgate.local import backdrops, background, pixels  # in the worker: OpenCV stays out of the server

    rgb = _rgb(photo, max_source_pixels)
    h, w = rgb.shape[:2]
    back = _rgb(reference, max_source_pixels) if reference else backdrops.make(DEFAULT_BACKDROP, w, h)
    keying = background.Keying(
        options["backdrop"], options["key_tolerance"], options["key_feather"], options["key_spill"]
    )
    placement = background.Placement(options["subject_position"], options["subject_scale"], options["safe_margin"])
    result, _ = background.replace_background(np.ascontiguousarray(rgb), back, keying, placement)
    if placement.margin > 0:  # the safe area, drawn on the preview only (a frame or a caption goes outside)
        import cv2

        mx, my = round(placement.margin * w), round(placement.margin * h)
        result = np.ascontiguousarray(result)
        cv2.rectangle(result, (mx, my), (w - 1 - mx, h - 1 - my), (255, 255, 255), max(1, w // 400), cv2.LINE_AA)
    return pixels.encode_jpeg(result, 85)
