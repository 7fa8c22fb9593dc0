"""Make the manual's offline-engine example images (docs/local-engine/*.jpg) from real photos.

    .venv/bin/python scripts/local_engine_examples.py

Photos: scikit-image's astronaut and coffee, matplotlib's Grace Hopper, scikit-image's rocket as a
backdrop (all shipped inside the test extras' wheels). Each picture goes through the same `engine.run`
the offline tab uses; the images are written small (they document quality, not resolution).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import local_photos as photos  # noqa: E402

from boothgate.local import engine, styles  # noqa: E402

OUT = ROOT / "docs" / "local-engine"
WIDTH = 900  # of each written image


def run(kind: str, photo: np.ndarray, reference: np.ndarray | None = None, style: str = "warm_film") -> np.ndarray:
    job = engine.Job(kind, photos.jpeg(photo), photos.jpeg(reference) if reference is not None else None,
                     style, 3000, 92, 200)  # fmt: skip
    return photos.decode(engine.run(job)[0])


def save(name: str, rgb: np.ndarray) -> None:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (WIDTH, round(h * WIDTH / w)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    (OUT / name).write_bytes(buf.tobytes())
    print(f"{OUT / name}: {len(buf) // 1024} KB")


def side_by_side(*images: np.ndarray, height: int = 600) -> np.ndarray:
    scaled = [cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height)) for im in images]
    gap = np.full((height, 12, 3), 255, np.uint8)
    row = [scaled[0]]
    for im in scaled[1:]:
        row += [gap, im]
    return np.hstack(row)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    group, _ = photos.two_people()
    group = cv2.resize(group, (2400, 1200), interpolation=cv2.INTER_CUBIC)
    backdrop = data.rocket()
    save("background.jpg", side_by_side(group, run("background", group, backdrop)))

    portrait = photos.astronaut(2.0)
    looks = [cv2.resize(run("prompt", portrait, style=name), (400, 400)) for name in styles.STYLE_NAMES]
    save("styles.jpg", side_by_side(cv2.resize(portrait, (400, 400)), *looks, height=400))

    guest, template = photos.grace_hopper(2.0), photos.astronaut(2.0)
    save("face_swap.jpg", side_by_side(guest, template, run("face_swap", guest, template)))


if __name__ == "__main__":
    main()
