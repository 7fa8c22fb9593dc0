"""The pure parts of issue 13: placeholder filling, masking passwords in URLs, crop geometry, and that
the shaping functions cross to a worker process (module-level, picklable arguments)."""

from __future__ import annotations

import io
import logging
import multiprocessing
import pickle
import sys
import types
from concurrent.futures import ProcessPoolExecutor

import pytest
from PIL import Image

from boothgate.imaging import shape as shaping
from boothgate.link_secrets import AccessLogMask, mask_query, public_query, query_password
from boothgate.run import placeholders
from boothgate.run.shaping import parse_size
from tests.conftest import make_jpeg, open_image


# ---------------------------------------------------------------- placeholders
def fill(prompt: str, fields: dict[str, str] | None = None, query: dict[str, str] | None = None) -> placeholders.Filled:
    return placeholders.fill(prompt, placeholders.values(fields or {}, query or {}, secret={"password", "key"}))


def test_query_wins_over_fields_and_names_ignore_case() -> None:
    filled = fill("a {Style} portrait", {"style": "pop"}, {"STYLE": "noir"})
    assert filled.prompt == "a noir portrait"
    assert filled.used == {"Style": "noir"}


def test_defaults_missing_and_doubled_braces() -> None:
    filled = fill("{{theme}} in {style|watercolour} for {who}", {"theme": "Retro"})
    assert filled.prompt == "Retro in watercolour for"
    assert filled.missing == ["who"]
    assert filled.defaulted == ["style"]


def test_braces_in_field_names_and_survey_fields() -> None:
    filled = fill("{qr1} / {survey2_type_id}", {"{qr1}": "A-1", "survey2_type_id": "cats"})
    assert filled.prompt == "A-1 / cats"


def test_values_are_cleaned() -> None:
    filled = fill("[{v}]", {"v": "\t line one\r\nline two\x00\u2028 " + "y" * 300})
    assert filled.prompt == "[line one line two " + "y" * (200 - len("line one line two ")) + "]"


def test_secret_fields_never_fill_a_placeholder() -> None:
    filled = fill("pw={password} key={key}", {"password": "hunter22"}, {"key": "k-123456"})
    assert "hunter22" not in filled.prompt and "k-123456" not in filled.prompt
    assert filled.missing == ["password", "key"]


def test_text_without_placeholders_is_left_alone() -> None:
    prompt = 'JSON like {"a": 1} and a lone { brace'
    assert fill(prompt).prompt == prompt
    assert placeholders.names(prompt) == []


def test_names_in_order_without_duplicates() -> None:
    assert placeholders.names("{b} {a|x} {B} {{c}}") == ["b", "a", "c"]


# ---------------------------------------------------------------- passwords in links
def test_mask_query() -> None:
    assert mask_query("/booth/gemini/1?password=abc&style=noir") == "/booth/gemini/1?password=***&style=noir"
    assert mask_query("/booth/gemini/1?style=noir&KEY=abc") == "/booth/gemini/1?style=noir&KEY=***"
    assert mask_query("/booth/gemini/1?monkey=abc") == "/booth/gemini/1?monkey=abc"
    assert query_password({"Key": "k", "style": "x"}) == "k"
    assert query_password({"password": "p", "key": "k"}) == "p"
    assert public_query({"password": "p", "style": "x", "token": "t"}) == {"style": "x"}


def test_access_records_keep_their_shape() -> None:
    """uvicorn's access formatter unpacks the args tuple: the mask must leave a tuple of five."""
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None)
    record.args = ("127.0.0.1:5", "POST", "/booth/gemini/1?password=s3cret-pw", "1.1", 200)
    assert AccessLogMask().filter(record)
    assert record.args == ("127.0.0.1:5", "POST", "/booth/gemini/1?password=***", "1.1", 200)
    assert "s3cret" not in record.getMessage()
    record.args = ("127.0.0.1:5", "POST", "/hooks/turbotext/hook-secret-1?x=1", "1.1", 200)
    AccessLogMask().filter(record)
    assert record.args[2] == "/hooks/turbotext/***?x=1"
    record.args = ("127.0.0.1:5", "GET", "/media/tok3n.jpg", "1.1", 200)
    AccessLogMask().filter(record)
    assert record.args[2] == "/media/***"


# ---------------------------------------------------------------- shape
@pytest.mark.parametrize(
    ("text", "size"),
    [("1800x1200", (1800, 1200)), (" 1200 X 1800 ", (1200, 1800)), ("640×480", (640, 480)), ("", None)],
)
def test_parse_size(text: str, size: tuple[int, int] | None) -> None:
    assert parse_size(text) == size


def test_crop_box_centre_and_faces() -> None:
    assert shaping.crop_box((1024, 1024), 1.5, []) == (0, 170, 1024, 853)
    # a face near the top pulls the box up (clamped at the edge)
    assert shaping.crop_box((1024, 1024), 1.5, [(400, 20, 120, 140)]) == (0, 0, 1024, 683)
    # a small face far from the main one is background: the box follows the main face
    box = shaping.crop_box((1000, 2000), 1.0, [(100, 1000, 300, 300), (900, 10, 20, 20)])
    assert box == (0, 650, 1000, 1650)


def test_face_detector_steers_the_crop_and_its_failure_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `local` engine's detector contract: detect_faces(PIL image) -> [(x, y, w, h)], largest first."""
    seen: list[tuple[int, int]] = []

    def detect_faces(image: Image.Image) -> list[tuple[int, int, int, int]]:
        seen.append(image.size)
        return [(0, 0, image.width // 10, image.height // 10)]  # top-left corner

    module = types.ModuleType("boothgate.local.faces")
    module.detect_faces = detect_faces  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "boothgate.local", types.ModuleType("boothgate.local"))
    monkeypatch.setitem(sys.modules, "boothgate.local.faces", module)
    square = Image.new("RGB", (1600, 1600))
    assert shaping.find_faces(square) == [(0, 0, 160, 160)]
    assert max(seen[-1]) == shaping.FACE_SEARCH_LONG_SIDE, "looked for on a small copy"

    def broken(image: Image.Image) -> list[tuple[int, int, int, int]]:
        raise RuntimeError("model file missing")

    module.detect_faces = broken  # type: ignore[attr-defined]
    assert shaping.find_faces(square) == []


def test_shaping_runs_in_a_worker_process() -> None:
    plan = shaping.ShapePlan("match_photo", "jpeg", 90, photo_size=(6000, 4000), long_side_pixels=900)
    pickle.dumps((shaping.shape_result, plan))
    data = make_jpeg(512, 512, seed=1)
    # spawn, as on Windows: a fork of this many-threaded test process could inherit a held lock
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        shaped, mime = pool.submit(shaping.shape_result, data, plan).result(timeout=60)
    assert mime == "image/jpeg"
    assert open_image(shaped).size == (900, 600)


def test_a_small_result_is_enlarged_and_a_right_sized_jpeg_passes_untouched() -> None:
    plan = shaping.ShapePlan("match_photo", "jpeg", 90, photo_size=(800, 600))
    exact = make_jpeg(800, 600, seed=2)
    assert shaping.shape_result(exact, plan) == (exact, "image/jpeg")
    small = make_jpeg(400, 300, seed=2)
    shaped, _ = shaping.shape_result(small, plan)
    assert open_image(shaped).size == (800, 600)


def test_a_transparent_result_stays_png() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (300, 300), (10, 20, 30, 0)).save(buf, "PNG")
    shaped, mime = shaping.shape_result(buf.getvalue(), shaping.ShapePlan("fixed", "jpeg", 90, fixed_size=(200, 100)))
    assert mime == "image/png"
    assert open_image(shaped).size == (200, 100)


def test_face_aware_crop_on_a_real_photo() -> None:
    """With the offline engine installed (the `local` tab), a wide result is cut around the guest's face.

    The astronaut portrait (scikit-image's sample photo) sits at the left of a wide canvas: a centre crop
    would cut her out; the face-aware crop keeps her face whole."""
    data = pytest.importorskip("skimage.data")
    faces = pytest.importorskip("boothgate.local.faces")
    portrait = Image.fromarray(data.astronaut())  # 512×512
    found = faces.detect_faces(portrait)
    if not found:
        pytest.skip("the offline engine is not available here")
    x, y, w, h = found[0]
    canvas = Image.new("RGB", (1536, 512), (128, 128, 128))
    canvas.paste(portrait, (0, 0))
    left, top, right, bottom = shaping.crop_box(canvas.size, 1.0, shaping.find_faces(canvas))
    assert left <= x and x + w <= right and top <= y and y + h <= bottom
    assert shaping.crop_box(canvas.size, 1.0, []) == (512, 0, 1024, 512), "without faces: the centre"


def test_already_shaped_is_read_from_the_header() -> None:
    plan = shaping.ShapePlan("match_photo", "jpeg", 90, photo_size=(800, 600))
    assert shaping.already_shaped(make_jpeg(800, 600, seed=3), plan)
    assert not shaping.already_shaped(make_jpeg(600, 600, seed=3), plan)
    assert not shaping.already_shaped(
        make_jpeg(800, 600, seed=3), shaping.ShapePlan(**{**plan.__dict__, "overlay": "x.png"})
    )
    assert not shaping.already_shaped(make_jpeg(600, 800, seed=3, exif_orientation=6), plan), (
        "EXIF-rotated: not as sent"
    )
