"""The offline engine's models: mediapipe 0.10.21's bundled graphs, loaded lazily and kept.

Everything here runs on an image worker (a thread today, maybe a process later), never on the event
loop: importing mediapipe costs ~0.8 s and building a graph ~20 ms. The graphs live in a module-level
cache, one of each per process; a graph must not run two images at once, so each has a lock (inference
is 10–70 ms of a job, the rest of a job runs in parallel). `warm()` loads everything ahead of the first
photo, for a caller that wants the first offline answer (often a fallback's) to be as quick as the rest.

`problem()` is the cheap check the provider calls on the event loop: it imports nothing heavy.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import types
from typing import Any

from boothgate.errors import ProviderNotConfigured

SUPPORTED_PYTHONS = ((3, 11), (3, 12))
MEDIAPIPE_VERSION = "0.10.21"

_import_lock = threading.Lock()
_solutions: Any = None
_import_error: str | None = None
_installed: bool | None = None
_graphs: dict[str, _Locked] = {}


class EngineUnavailable(ProviderNotConfigured):
    """The offline engine cannot run on this machine (503): the reason says what to install."""

    code = "local_engine_unavailable"


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def problem() -> str | None:
    """Why the engine cannot run here (operator-facing), or None. Safe to call on the event loop."""
    global _installed
    if sys.version_info[:2] not in SUPPORTED_PYTHONS:
        running = f"{sys.version_info[0]}.{sys.version_info[1]}"
        return (
            f"The offline engine needs Python 3.11 or 3.12 (mediapipe {MEDIAPIPE_VERSION} has no wheel for "
            f"Python {running}). The other tabs work."
        )
    if _installed is None:
        _installed = _found("mediapipe") and _found("cv2")
    if not _installed:
        _installed = None  # look again next time: the operator may install it while the server runs
        return (
            f"The offline engine is not installed: run `make install` (it installs mediapipe=={MEDIAPIPE_VERSION} "
            "and opencv-contrib-python)."
        )
    return _import_error


def _quiet_native_logs() -> None:
    # mediapipe's TFLite and absl print INFO lines to stderr for every graph; keep the server's log readable.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_mediapipe() -> Any:
    """`mediapipe.solutions`, imported once per process.

    mediapipe's package import pulls in its drawing helpers, which import matplotlib.pyplot (only to
    plot landmarks, which we never do). When matplotlib is not installed, a placeholder stands in for
    the duration of the import so ~40 MB of plotting wheels are not needed; it is removed afterwards so
    nobody else mistakes it for matplotlib.
    """
    global _solutions, _import_error
    with _import_lock:
        if _solutions is not None:
            return _solutions
        reason = problem()
        if reason is not None:
            raise EngineUnavailable(reason)
        _quiet_native_logs()
        placeholders: list[str] = []
        if not _found("matplotlib"):
            package = types.ModuleType("matplotlib")
            pyplot = types.ModuleType("matplotlib.pyplot")
            package.pyplot = pyplot  # type: ignore[attr-defined]
            sys.modules["matplotlib"], sys.modules["matplotlib.pyplot"] = package, pyplot
            placeholders = ["matplotlib.pyplot", "matplotlib"]
        try:
            from mediapipe.python import solutions
        except Exception as exc:  # a broken install must not take the other tabs down
            _import_error = f"The offline engine cannot load mediapipe: {type(exc).__name__}: {exc}."
            raise EngineUnavailable(_import_error) from exc
        finally:
            for name in placeholders:
                sys.modules.pop(name, None)
        _solutions = solutions
        return solutions


class _Locked:
    """A mediapipe graph that runs one image at a time, whichever worker thread calls it."""

    def __init__(self, graph: Any) -> None:
        self._graph = graph
        self._lock = threading.Lock()

    def process(self, image: Any) -> Any:
        with self._lock:
            return self._graph.process(image)


def _cached(name: str, build: Any) -> _Locked:
    graph = _graphs.get(name)
    if graph is None:
        solutions = _import_mediapipe()
        with _import_lock:
            graph = _graphs.get(name)
            if graph is None:
                graph = _graphs[name] = _Locked(build(solutions))
    return graph


def selfie_segmentation() -> _Locked:
    """Person segmentation (the general 256×256 model: better edges than the landscape one)."""
    return _cached("selfie", lambda s: s.selfie_segmentation.SelfieSegmentation(model_selection=0))


def face_detection() -> _Locked:
    """The full-range face detector (faces up to ~5 m away: people at the back of a group)."""
    return _cached(
        "detector", lambda s: s.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    )


def face_mesh() -> _Locked:
    """468 face landmarks, run on a crop around one detected face."""
    return _cached(
        "mesh",
        lambda s: s.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.4
        ),
    )


def pose() -> _Locked:
    """Body pose with its person mask (the bundled full model: `model_complexity=1` needs no download),
    run on a crop around one detected face: it sees one person, so it does not take the wall beside a head
    for hair the way the selfie model does."""
    return _cached(
        "pose",
        lambda s: s.pose.Pose(
            static_image_mode=True, model_complexity=1, enable_segmentation=True, min_detection_confidence=0.5
        ),
    )


def warm() -> None:
    """Load every graph and run each once (module-level, no arguments: any worker can run it)."""
    import numpy as np

    blank = np.zeros((64, 64, 3), np.uint8)
    for graph in (selfie_segmentation(), face_detection(), face_mesh(), pose()):
        graph.process(blank)
