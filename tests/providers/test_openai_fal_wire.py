"""The small pieces under the OpenAI and fal.ai tabs: sizes and ratios from the photo's shape, Retry-After,
fal's error bodies, and the cover-fit compositing of a cut-out onto a background."""

from __future__ import annotations

import email.utils
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from boothgate.errors import ProviderFailed, ProviderRefused
from boothgate.providers import fal_models, openai_wire
from boothgate.providers.fal_composite import composite_cover
from boothgate.providers.fal_queue import Retryable, detail_text, read_error

FREE = frozenset({"gpt-image-2"})


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1080, 1920), (1500, 1000), (1000, 1000), (4000, 3000)])
def test_free_sizes_keep_the_photos_shape_in_steps_of_16(width: int, height: int) -> None:
    size = openai_wire.choose_size("match_photo", "gpt-image-2", width, height, FREE)
    w, h = (int(v) for v in size.split("x"))
    assert w % 16 == 0 and h % 16 == 0
    assert w / h == pytest.approx(width / height, rel=0.02)
    assert 0.9 < w * h / openai_wire.FREE_SIZE_PIXELS < 1.1


def test_free_sizes_stay_within_three_to_one() -> None:
    w, h = (int(v) for v in openai_wire.free_size(8.0).split("x"))
    assert w / h == pytest.approx(3.0, rel=0.03)


@pytest.mark.parametrize(
    ("width", "height", "size"),
    [(1600, 1000, "1536x1024"), (1000, 1600, "1024x1536"), (1050, 1000, "1024x1024"), (1000, 1050, "1024x1024")],
)
def test_other_models_get_the_standard_size_of_the_photos_orientation(width: int, height: int, size: str) -> None:
    assert openai_wire.choose_size("match_photo", "gpt-image-1.5", width, height, FREE) == size


def test_a_chosen_size_is_sent_as_chosen() -> None:
    assert openai_wire.choose_size("1024x1536", "gpt-image-2", 1600, 1000, FREE) == "1024x1536"
    assert openai_wire.choose_size("auto", "gpt-image-2", 1600, 1000, FREE) == "auto"


def test_model_sets_are_read_from_a_comma_separated_setting() -> None:
    assert openai_wire.model_set(" gpt-image-2, gpt-image-1.5 ,,") == {"gpt-image-2", "gpt-image-1.5"}


def test_retry_after_in_seconds_milliseconds_and_as_a_date() -> None:
    assert openai_wire.retry_after_seconds(httpx.Headers({"retry-after": "7"})) == 7.0
    assert openai_wire.retry_after_seconds(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    later = email.utils.formatdate(1_000_030, usegmt=True)
    assert openai_wire.retry_after_seconds(httpx.Headers({"retry-after": later}), now=1_000_000) == pytest.approx(30)
    assert openai_wire.retry_after_seconds(httpx.Headers({"retry-after": "soon"})) is None
    assert openai_wire.retry_after_seconds(httpx.Headers({})) is None


@pytest.mark.parametrize(
    ("width", "height", "ratio"), [(1500, 1000, "3:2"), (1000, 1000, "1:1"), (1080, 1920, "9:16"), (1200, 900, "4:3")]
)
def test_nearest_supported_aspect_ratio(width: int, height: int, ratio: str) -> None:
    assert fal_models.nearest_ratio(width, height, fal_models.NANO_BANANA_RATIOS) == ratio


def test_every_curated_model_builds_its_own_arguments() -> None:
    links = ["data:image/jpeg;base64,AAAA", "data:image/jpeg;base64,BBBB"]
    for model in fal_models.CURATED.values():
        call = fal_models.build_call(model, "text", links, (1500, 1000), "auto", "1K", "jpeg", "2")
        if model.style == "birefnet":
            assert call.arguments["image_url"] == links[0] and "prompt" not in call.arguments
        elif model.style == "kontext_lora":  # one input image: the photo (prompt slots only)
            assert call.arguments["image_url"] == links[0] and call.arguments["prompt"] == "text"
        else:
            assert call.arguments["prompt"] == "text"
            assert links[1] in str(call.arguments)  # the reference goes along


def test_fal_detail_as_list_or_string() -> None:
    listed = {"detail": [{"loc": ["body", "image_url"], "msg": "bad image", "type": "image_load_error"}]}
    assert detail_text(listed) == "image_url: bad image"
    assert detail_text({"detail": "Application not found"}) == "Application not found"


def _response(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_fal_errors_are_sorted_once() -> None:
    refused = read_error(
        _response(422, {"detail": [{"msg": "flagged", "type": "content_policy_violation"}]}), "m", "result"
    )
    assert isinstance(refused, ProviderRefused)
    assert isinstance(read_error(_response(503, {"detail": "busy"}), "m", "submit"), Retryable)
    final = read_error(_response(503, {"detail": "broken input"}, **{"X-Fal-Retryable": "false"}), "m", "submit")
    assert isinstance(final, ProviderFailed)
    again = read_error(_response(400, {"detail": "try again"}, **{"X-Fal-Retryable": "true"}), "m", "result")
    assert isinstance(again, Retryable)
    auth = read_error(_response(401, {"detail": "No user found"}), "m", "submit")
    assert isinstance(auth, ProviderFailed) and auth.code == "provider_auth"
    limited = read_error(_response(429, {"detail": "slow down"}, **{"Retry-After": "3"}), "m", "submit")
    assert isinstance(limited, Retryable) and limited.rate_limited and limited.wait == 3.0


def _png(array: np.ndarray, mode: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, "PNG")
    return out.getvalue()


def test_the_cut_out_lands_on_the_cover_fitted_background() -> None:
    # A 400x300 cut-out: opaque red in the middle, transparent around it.
    cut = np.zeros((300, 400, 4), dtype=np.uint8)
    cut[100:200, 150:250] = (255, 0, 0, 255)
    # A portrait background (300x600): green top, blue middle (rows 150-450), white bottom. Covering the
    # landscape frame it is scaled to 400x800 and centre-cropped to rows 250-550 of that, which are rows
    # 187-413 of the original: only the blue middle shows, neither stripe.
    bg = np.zeros((600, 300, 3), dtype=np.uint8)
    bg[:150] = (0, 255, 0)
    bg[150:450] = (0, 0, 255)
    bg[450:] = (255, 255, 255)
    data, mime = composite_cover(_png(cut, "RGBA"), _png(bg, "RGB"), "png")
    assert mime == "image/png"
    with Image.open(io.BytesIO(data)) as im:
        result = np.asarray(im.convert("RGB"))
    assert result.shape == (300, 400, 3)  # the photo's frame, no bars
    assert tuple(result[150, 200]) == (255, 0, 0)  # the guest
    assert tuple(result[10, 10]) == (0, 0, 255) and tuple(result[290, 390]) == (0, 0, 255)
    jpeg, jpeg_mime = composite_cover(_png(cut, "RGBA"), _png(bg, "RGB"), "jpeg")
    assert jpeg_mime == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
