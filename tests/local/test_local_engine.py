"""The offline engine at the unit level, on real photos: faces, background, styles, face swap, loading.

Everything here runs the real mediapipe 0.10.21 models and OpenCV; nothing is stubbed.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from typing import get_args

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from boothgate.imaging.workers import ImageWorkers
from boothgate.local import engine, face_swap, faces, models, styles
from boothgate.providers.base import ProviderContext
from boothgate.providers.local import LocalOptions, LocalProvider, Style
from boothgate.settings import get_settings
from tests import local_photos as photos

pytestmark = pytest.mark.skipif(models.problem() is not None, reason=str(models.problem()))


def job(kind: str, photo: np.ndarray, reference: np.ndarray | None = None, **overrides: object) -> engine.Job:
    values: dict[str, object] = {
        "kind": kind,
        "photo": photos.jpeg(photo),
        "reference": photos.jpeg(reference) if reference is not None else None,
        "style": "warm_film",
        "long_side": 3000,
        "quality": 92,
        "min_face_pixels": 200,
    }
    values.update(overrides)
    return engine.Job(**values)  # type: ignore[arg-type]


def result_of(j: engine.Job) -> np.ndarray:
    data, _notes = engine.run(j)
    assert data[:3] == b"\xff\xd8\xff"
    return photos.decode(data)


# --- faces --------------------------------------------------------------------------------------


def test_detect_faces_finds_the_real_faces_largest_first() -> None:
    canvas, where = photos.two_people()
    boxes = faces.detect_faces(Image.fromarray(canvas))
    assert len(boxes) == 2
    (gx, _, gw, gh), (ax, ay, aw, ah) = boxes  # Grace Hopper's face is the larger one
    assert gw * gh > aw * ah
    assert where["grace_hopper"][0] <= gx and gx + gw <= where["grace_hopper"][0] + 512
    assert ax + aw <= 512 and ay >= 88
    assert all(isinstance(v, int) for box in boxes for v in box)


def test_detect_faces_answers_empty_without_a_face_or_without_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert faces.detect_faces(Image.fromarray(photos.coffee())) == []
    monkeypatch.setattr(models, "SUPPORTED_PYTHONS", ((3, 99),))
    assert faces.detect_faces(Image.fromarray(photos.astronaut())) == []


def test_problem_names_the_python_the_engine_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert models.problem() is None
    monkeypatch.setattr(models, "SUPPORTED_PYTHONS", ((3, 99),))
    message = models.problem()
    assert message is not None and "Python 3.11 or 3.12" in message


# --- background ---------------------------------------------------------------------------------


def test_background_keeps_the_person_and_replaces_the_rest() -> None:
    photo = photos.astronaut(2.0)  # 1024×1024
    reference = photos.coffee(1024 / 400)[:, :1024]  # a real photo of the same shape: cover-fit is a no-op
    result = result_of(job("background", photo, reference))
    assert result.shape == photo.shape
    (face,) = faces.find_faces(photo)
    assert photos.difference(photos.region(result, face), photos.region(photo, face)) < 10
    ref = cv2.resize(reference, (1024, 1024))
    for corner in [(0, 0, 120, 120), (900, 0, 120, 120)]:  # the flag and the shuttle
        assert photos.difference(photos.region(result, corner), photos.region(ref, corner)) < 15
        assert photos.difference(photos.region(result, corner), photos.region(photo, corner)) > 30


def test_background_keeps_both_people_of_a_group() -> None:
    canvas, _ = photos.two_people()
    reference = cv2.resize(photos.coffee(), (1200, 600))
    result = result_of(job("background", canvas, reference))
    assert result.shape == canvas.shape
    for x, y, w, h in faces.find_faces(canvas):
        # the face's box without its corners: those hold the studio backdrop beside the hair, which goes
        face = (x + w // 8, y + h // 8, w - w // 4, h - h // 4)
        assert photos.difference(photos.region(result, face), photos.region(canvas, face)) < 12
    # Each person's body (below the face), not only the face, stays solid.
    for body in [(150, 420, 200, 150), (760, 420, 280, 150)]:
        assert photos.difference(photos.region(result, body), photos.region(canvas, body)) < 15
    gap = (530, 0, 90, 80)  # grey canvas between and above the two: background
    assert photos.difference(photos.region(result, gap), photos.region(reference, gap)) < 15


def test_background_result_is_capped_at_the_long_side() -> None:
    result = result_of(job("background", photos.astronaut(2.0), photos.coffee(), long_side=700))
    assert result.shape == (700, 700, 3)


# --- styles -------------------------------------------------------------------------------------


def test_the_options_offer_exactly_the_engine_styles() -> None:
    assert set(get_args(Style)) == set(styles.STYLE_NAMES) == set(styles.STYLES)
    assert LocalOptions().style in styles.STYLE_NAMES


@pytest.mark.parametrize("style", styles.STYLE_NAMES)
def test_each_style_returns_the_photo_restyled_at_its_size(style: str) -> None:
    photo = photos.astronaut(2.5)[:, :1100]  # 1280×1100: not square, so a swapped axis would show
    result = result_of(job("prompt", photo, style=style, long_side=1000))
    assert result.shape == (1000, 859, 3)
    shrunk = cv2.resize(photo, (859, 1000), interpolation=cv2.INTER_AREA)
    assert photos.difference(result, shrunk) > 3, f"{style} changed nothing"
    # Still the same picture: its light and shade are where they were.
    coarse = [
        cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
        for im in (result, shrunk)
    ]
    assert photos.correlation(coarse[0].astype(np.float32), coarse[1].astype(np.float32)) > 0.8


def test_black_and_white_styles_have_no_colour() -> None:
    photo = photos.astronaut()
    noir = result_of(job("prompt", photo, style="noir"))
    spread = noir.max(axis=2).astype(int) - noir.min(axis=2).astype(int)
    assert np.percentile(spread, 99) <= 6  # JPEG chroma noise only


# --- face swap ----------------------------------------------------------------------------------


def test_face_swap_puts_the_guests_face_into_the_template() -> None:
    guest = photos.grace_hopper(2.0)  # face ~400 px wide
    template = photos.astronaut(2.0)
    data, notes = engine.run(job("face_swap", guest, template))
    result = photos.decode(data)
    assert result.shape == template.shape
    assert notes["template_faces"] == 1 and notes["guest_face_pixels"] >= 300

    (box,) = faces.find_faces(template)
    template_points = faces.landmarks(template, box)
    guest_points = faces.landmarks(guest, faces.find_faces(guest)[0])
    assert template_points is not None and guest_points is not None
    # The guest's face aligned onto the template's, to compare like with like.
    matrix, _ = cv2.estimateAffinePartial2D(guest_points, template_points)
    aligned = cv2.warpAffine(guest, matrix, (template.shape[1], template.shape[0]))
    x0, y0 = template_points.min(axis=0)
    x1, y1 = template_points.max(axis=0)
    w, h = x1 - x0, y1 - y0
    inner = (int(x0 + 0.2 * w), int(y0 + 0.2 * h), int(0.6 * w), int(0.45 * h))  # eyes and nose
    gray = {name: cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for name, image in
            {"result": result, "template": template, "guest": aligned}.items()}  # fmt: skip
    like_guest = photos.correlation(*(photos.detail(photos.region(gray[n], inner)) for n in ("result", "guest")))
    template_like_guest = photos.correlation(
        *(photos.detail(photos.region(gray[n], inner)) for n in ("template", "guest"))
    )
    assert like_guest > template_like_guest + 0.2, (like_guest, template_like_guest)
    # Everything away from the face is the template, untouched.
    for away in [(0, 700, 300, 300), (750, 0, 270, 300), (350, 650, 300, 300)]:
        assert photos.difference(photos.region(result, away), photos.region(template, away)) < 2.5


@pytest.mark.parametrize(
    ("photo", "code"),
    [
        (photos.coffee(2.0), "no_face"),
        (photos.astronaut(), "face_too_small"),  # a 105 px face
        (photos.grace_hopper(2.0)[300:, :], "face_at_edge"),  # the forehead cut by the frame
    ],
    ids=["no_face", "too_small", "at_edge"],
)
def test_face_swap_refuses_a_photo_without_a_usable_face(photo: np.ndarray, code: str) -> None:
    with pytest.raises(face_swap.FaceNotUsable) as caught:
        engine.run(job("face_swap", np.ascontiguousarray(photo), photos.astronaut(2.0)))
    assert caught.value.status == 422 and caught.value.code == code
    assert caught.value.message


def test_face_swap_refusals_survive_a_process_boundary() -> None:
    error = pickle.loads(pickle.dumps(face_swap.FaceTooSmall("small")))
    assert (error.status, error.code, error.message) == (422, "face_too_small", "small")


# --- loading ------------------------------------------------------------------------------------


def test_two_worker_threads_share_the_models_safely() -> None:
    """The graphs are shared by the worker threads; each image still gets its own, correct answer."""
    models.warm()
    canvas, _ = photos.two_people()
    jobs = [
        job("background", canvas, photos.coffee()),
        job("face_swap", photos.grace_hopper(2.0), photos.astronaut(2.0)),
    ]
    alone = [engine.run(j)[0] for j in jobs]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda j: engine.run(j)[0], jobs * 2))
    assert together == alone * 2


def test_the_engine_runs_in_a_worker_process() -> None:
    """Image workers may become processes: the job pickles and the models load in the child."""
    canvas, _ = photos.two_people()
    work = job("background", canvas, photos.coffee())
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        data, notes = pool.submit(engine.run, work).result(timeout=120)
    assert photos.decode(data).shape == canvas.shape
    assert notes["face_passes"] >= 1


def test_mediapipe_loads_without_matplotlib() -> None:
    """The install leaves matplotlib out; the engine still loads its models (and leaves no fake behind)."""
    script = textwrap.dedent(
        """
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("matplotlib", "jax", "jaxlib", "sounddevice"):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from boothgate.local import models
        mask = models.selfie_segmentation().process(np.zeros((64, 64, 3), np.uint8)).segmentation_mask
        assert mask.shape == (64, 64)
        assert "matplotlib" not in sys.modules and "jax" not in sys.modules
        print("loaded")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded" in done.stdout


async def test_check_loads_the_models_on_an_image_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    workers = ImageWorkers(1)
    async with httpx.AsyncClient() as http:
        provider = LocalProvider(ProviderContext(get_settings(), http, images=workers))
        verdict = await provider.check()
        assert verdict.ok and "ready" in verdict.message
        monkeypatch.setattr(models, "SUPPORTED_PYTHONS", ((3, 99),))
        verdict = await provider.check()
        assert not verdict.ok and "Python 3.11 or 3.12" in verdict.message
    workers.shutdown()


def test_face_swap_in_a_group_swaps_every_guest_onto_the_templates_faces_in_order() -> None:
    """Two guests (left: Grace Hopper, right: the astronaut) onto a two-face template (the same two real
    portraits, the other way round): both template faces change, each toward the guest on its side."""
    guests = np.full((1200, 2400, 3), 128, np.uint8)
    guests[0:1200, 100:1124] = photos.grace_hopper(2.0)[:1200]
    guests[176:1200, 1300:2324] = photos.astronaut(2.0)
    template = np.full((1200, 2400, 3), 90, np.uint8)
    template[176:1200, 100:1124] = photos.astronaut(2.0)
    template[0:1200, 1300:2324] = photos.grace_hopper(2.0)[:1200]
    data, notes = engine.run(job("face_swap", guests, template, min_face_pixels=150))
    result = photos.decode(data)
    assert result.shape == template.shape
    assert notes["faces_swapped"] == 2 and notes["template_faces"] == 2
    assert "faces_not_swapped" not in notes
    changed = []
    for x, y, w, h in sorted(faces.find_faces(template), key=lambda b: b[0]):
        inner = (x + w // 4, y + h // 4, w // 2, h // 2)
        changed.append(photos.difference(photos.region(result, inner), photos.region(template, inner)))
    assert len(changed) == 2 and min(changed) > 8, changed


def test_face_swap_says_which_guests_were_not_swapped() -> None:
    guests, _ = photos.two_people()  # the astronaut's face (~105 px) is under the minimum
    _, notes = engine.run(job("face_swap", guests, photos.grace_hopper(2.0), min_face_pixels=150))
    assert notes["faces_swapped"] == 1
    assert any("face_too_small" in reason for reason in notes["faces_not_swapped"])
