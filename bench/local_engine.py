"""The offline engine's cost per photo for each kind, at 24 MP input (`python -m bench --only local`).

Each figure is one photo through what the offline tab does: prepare the 24 MP JPEG to the tab's input
size (`images.prepare`, as the spine does on an image worker), then the engine (`local.engine.run`) on
one worker, models already loaded. Medians of a few runs; the first run's model loading is listed apart.
The photos are real ones (scikit-image's astronaut, matplotlib's Grace Hopper) scaled up to 6000×4000,
because segmentation and face work cost what they cost on faces, not on noise.

    python -m bench.local_engine [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from tests import local_photos as photos

from boothgate.imaging import images
from boothgate.local import engine, models, styles
from boothgate.settings import get_settings

SIZE = (6000, 4000)  # a 24 MP frame, 3:2


@dataclass
class Figure:
    kind: str
    prepare_ms: float
    prepare_cpu_ms: float
    engine_ms: float
    engine_cpu_ms: float  # all threads of this process: steadier than wall time on a shared machine
    result: str

    @property
    def total_ms(self) -> float:
        return self.prepare_ms + self.engine_ms


def _group_photo() -> np.ndarray:
    """Two real people on a real backdrop, 3:2, scaled to 24 MP."""
    canvas = photos.coffee(1152 / 600)[:768, :1152].copy()
    canvas[256:768, 40:552] = photos.astronaut()
    canvas[168:768, 600:1112] = photos.grace_hopper()
    return cv2.resize(canvas, SIZE, interpolation=cv2.INTER_CUBIC)


def _green_screen_photo() -> np.ndarray:
    """Grace Hopper cut out by the person model and laid on an unevenly lit green cloth with noise, 24 MP."""
    from boothgate.local import background

    portrait = photos.grace_hopper(1.28)  # 655×768
    soft, _ = background.person_mask(portrait)
    alpha = cv2.resize(background.smoothstep(soft), (portrait.shape[1], portrait.shape[0]))[..., None]
    canvas = np.zeros((768, 1152, 3), np.float32)
    canvas[:] = (52, 177, 72)
    canvas *= np.linspace(0.85, 1.1, 1152, dtype=np.float32)[None, :, None]
    x0 = (1152 - portrait.shape[1]) // 2
    canvas[:, x0 : x0 + portrait.shape[1]] = portrait * alpha + canvas[:, x0 : x0 + portrait.shape[1]] * (1 - alpha)
    canvas += np.random.default_rng(7).normal(0, 5, canvas.shape)
    return cv2.resize(np.clip(canvas, 0, 255).astype(np.uint8), SIZE, interpolation=cv2.INTER_CUBIC)


def _template() -> np.ndarray:
    """The astronaut as a 3:2 face-swap template (her whole head inside), 24 MP."""
    portrait = photos.astronaut()[:341, :]
    return cv2.resize(portrait, SIZE, interpolation=cv2.INTER_CUBIC)


def _median_ms(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of `run()`."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def measure(repeats: int = 3) -> tuple[list[Figure], float, str]:
    """Figures per kind, the first run's extra cost (model loading) in ms, and the settings used."""
    settings = get_settings()
    long_side = settings.local_output_long_side_pixels
    pixels = round(long_side * long_side * 2 / 3)  # what providers/local.py prepares to
    group, template = photos.jpeg(_group_photo(), 95), photos.jpeg(_template(), 95)
    background = photos.jpeg(cv2.resize(photos.coffee(), SIZE), 95)

    def prepared(data: bytes) -> bytes:
        return images.prepare(data, pixels, settings.max_image_pixels, settings.jpeg_quality).data

    def job(kind: str, photo: bytes, reference: bytes | None, style: str = "warm_film", **more: object) -> engine.Job:
        return engine.Job(kind, photo, reference, style, long_side, settings.jpeg_quality,
                          settings.local_face_swap_min_face_pixels, **more)  # type: ignore[arg-type]  # fmt: skip

    started = time.perf_counter()
    engine.run(job("background", prepared(group), prepared(background)))
    first_ms = (time.perf_counter() - started) * 1000

    prepare_ms, prepare_cpu_ms = _median_ms(lambda: prepared(group), repeats)
    photo, ref, tpl = prepared(group), prepared(background), prepared(template)
    green = prepared(photos.jpeg(_green_screen_photo(), 95))
    cases = [("background", job("background", photo, ref))]
    cases += [("background: green screen", job("background", green, ref, backdrop="green_screen"))]
    cases += [(f"prompt: {name}", job("prompt", photo, None, name)) for name in styles.STYLE_NAMES]
    cases += [("face_swap", job("face_swap", photo, tpl))]
    figures = []
    for label, work in cases:
        _, notes = engine.run(work)  # warm this path once (OpenCV allocates on first use)
        wall, cpu = _median_ms(lambda w=work: engine.run(w), repeats)  # type: ignore[misc]
        figures.append(Figure(label, prepare_ms, prepare_cpu_ms, wall, cpu, notes["result_size"]))
    first_extra = first_ms - figures[0].engine_ms
    return figures, first_extra, f"result long side {long_side} px, JPEG quality {settings.jpeg_quality}"


def table(repeats: int = 3) -> list[str]:
    reason = models.problem()
    if reason is not None:
        return [f"(not measured: {reason})"]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    figures, first_extra, used = measure(repeats)
    lines = [
        f"One 6000×4000 JPEG (q95) per photo, {used}, one image worker, median of {repeats}; "
        f"{os.cpu_count()} cores, load average at start {load}. CPU = all threads of the process: steadier "
        "than wall time when the machine is shared.",
        "",
        "| kind | prepare 24 MP: wall / CPU ms | engine: wall / CPU ms | total wall ms per photo | result |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {f.kind} | {f.prepare_ms:.0f} / {f.prepare_cpu_ms:.0f} | {f.engine_ms:.0f} / {f.engine_cpu_ms:.0f} "
        f"| {f.total_ms:.0f} | {f.result} |"
        for f in figures
    ]
    lines += ["", f"Loading the models on a worker's first offline photo adds {first_extra:.0f} ms once."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.local_engine", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(table(args.repeats)))


if __name__ == "__main__":
    main()
