"""The small Gemini rules on their own: ratios, which models take a size, templates, retry delays."""

from __future__ import annotations

from typing import get_args

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from boothgate.providers import gemini_errors as errs
from boothgate.providers import gemini_wire as wire
from boothgate.providers.base import Kind, PreparedImage
from boothgate.providers.gemini_options import AspectRatio, ImageSize
from boothgate.settings import GEMINI_IMAGE_SIZES


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ((1000, 1000), "1:1"),
        ((6000, 4000), "3:2"),
        ((4000, 6000), "2:3"),
        ((4032, 3024), "4:3"),
        ((1080, 1920), "9:16"),
        ((1920, 1080), "16:9"),
        ((3000, 1000), "21:9"),
        ((1000, 5000), "9:16"),
        ((1200, 1500), "4:5"),
        ((1500, 1200), "5:4"),
    ],
)
def test_nearest_aspect_ratio(size: tuple[int, int], ratio: str) -> None:
    assert wire.nearest_aspect_ratio(*size) == ratio


@pytest.mark.parametrize(
    ("model", "sizes"),
    [
        ("gemini-nano-banana-2.1", ["1K", "2K", "4K"]),
        ("models/gemini-3-pro-image", ["1K", "2K", "4K"]),
        ("gemini-3.1-flash-lite-image", ["1K"]),
        ("gemini-3.1-flash-lite-image-002", ["1K"]),
        ("gemini-nano-banana-3", None),  # not in the table: send the slot's size, learn from a refusal
        ("", None),
    ],
)
def test_image_sizes_come_from_the_table(model: str, sizes: list[str] | None) -> None:
    assert wire.sizes_for(model, GEMINI_IMAGE_SIZES) == sizes


def test_a_longer_prefix_wins() -> None:
    table = {"gemini-3": ["1K"], "gemini-3-pro": ["1K", "2K"]}
    assert wire.sizes_for("gemini-3-pro-image", table) == ["1K", "2K"]
    assert wire.sizes_for("gemini-3-flash", table) == ["1K"]


def test_options_offer_exactly_the_supported_values() -> None:
    assert get_args(AspectRatio) == ("auto", *wire.ASPECT_RATIOS)
    assert get_args(ImageSize) == ("auto", *wire.IMAGE_SIZES)


def test_fill_template() -> None:
    assert wire.fill_template("Make it {prompt}. Keep faces.", "pirates") == "Make it pirates. Keep faces."
    assert wire.fill_template("Make it nice. {prompt} Keep faces.", "") == "Make it nice. Keep faces."
    assert wire.fill_template("No placeholder.", "pirates") == "No placeholder. pirates"
    assert wire.fill_template("Line one.\n{prompt}", "x {y}") == "Line one.\nx {y}"


def test_instruction_wins_over_template() -> None:
    templates = {kind: "T {prompt}" for kind in Kind}
    assert wire.instruction_text(Kind.prompt, "p", templates, None) == "T p"
    assert wire.instruction_text(Kind.prompt, "p", templates, "Exactly this.") == "Exactly this."


def test_choose_image() -> None:
    photo = PreparedImage(b"", "image/jpeg", 1600, 1200)
    assert wire.choose_image("gemini-3-pro-image", photo, "auto", "auto") == wire.ImageChoice("4:3", None)
    assert wire.choose_image("gemini-3-pro-image", photo, "16:9", "4K") == wire.ImageChoice("16:9", "4K")
    lite = wire.sizes_for("gemini-3.1-flash-lite-image", GEMINI_IMAGE_SIZES)
    assert wire.choose_image("gemini-3.1-flash-lite-image", photo, "auto", "4K", lite) == wire.ImageChoice("4:3", None)
    assert wire.choose_image("gemini-3.1-flash-lite-image", photo, "auto", "1K", lite) == wire.ImageChoice("4:3", "1K")
    refused = frozenset({"imageSize"})
    assert wire.choose_image("x-image", photo, "1:1", "2K", None, refused) == wire.ImageChoice("1:1", None)


def test_build_config_timeout_is_milliseconds() -> None:
    config = wire.build_config(wire.ImageChoice("1:1", None), 12.3456)
    assert config.http_options is not None and config.http_options.timeout == 12345
    assert wire.build_config(wire.ImageChoice("1:1", None), 0.0).http_options.timeout == 1  # type: ignore[union-attr]


def test_read_answer_takes_the_last_non_thought_image() -> None:
    answer = wire.read_answer(
        types.GenerateContentResponse(
            candidates=[
                types.Candidate(
                    content=types.Content(
                        role="model",
                        parts=[
                            types.Part(inline_data=types.Blob(data=b"first", mime_type="image/png")),
                            types.Part(inline_data=types.Blob(data=b"final", mime_type="image/webp")),
                            types.Part(inline_data=types.Blob(data=b"draft", mime_type="image/png"), thought=True),
                            types.Part(text="done"),
                        ],
                    ),
                    finish_reason=types.FinishReason.STOP,
                )
            ]
        )
    )
    assert (answer.data, answer.mime) == (b"final", "image/webp")


@pytest.mark.parametrize(
    ("candidate", "missing"),
    [
        (types.Candidate(finish_reason=types.FinishReason.NO_IMAGE), "NO_IMAGE"),
        (types.Candidate(finish_reason=types.FinishReason.IMAGE_OTHER), "IMAGE_OTHER"),
        (
            types.Candidate(
                content=types.Content(role="model", parts=[types.Part(text="sorry")]),
                finish_reason=types.FinishReason.STOP,
            ),
            "text only",
        ),
    ],
)
def test_read_answer_without_image(candidate: types.Candidate, missing: str) -> None:
    answer = wire.read_answer(types.GenerateContentResponse(candidates=[candidate]))
    assert answer.data is None and answer.refusal is None and answer.missing == missing


def test_read_answer_refusals() -> None:
    blocked = types.GenerateContentResponse(
        prompt_feedback=types.GenerateContentResponsePromptFeedback(block_reason=types.BlockedReason.SAFETY)
    )
    assert "SAFETY" in (wire.read_answer(blocked).refusal or "")
    stopped = types.GenerateContentResponse(
        candidates=[types.Candidate(finish_reason=types.FinishReason.IMAGE_SAFETY, finish_message="Nope.")]
    )
    refusal = wire.read_answer(stopped).refusal or ""
    assert "IMAGE_SAFETY" in refusal and "Nope." in refusal


def _api_error(code: int, status: str, message: str, details: list | None = None) -> genai_errors.APIError:
    body = {"error": {"code": code, "status": status, "message": message, "details": details or []}}
    return genai_errors.ClientError(code, body)


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [("47s", 47.0), ("1.5s", 1.5), ({"seconds": "3", "nanos": 500_000_000}, 3.5), ("soon", None)],
)
def test_retry_delay(delay: object, seconds: float | None) -> None:
    exc = _api_error(
        429,
        "RESOURCE_EXHAUSTED",
        "quota",
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}],
    )
    assert errs.retry_delay_seconds(exc) == seconds


def test_retry_delay_absent() -> None:
    assert errs.retry_delay_seconds(_api_error(429, "RESOURCE_EXHAUSTED", "quota")) is None


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (
            _api_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
            "provider_auth",
        ),
        (_api_error(401, "UNAUTHENTICATED", "no"), "provider_auth"),
        (_api_error(403, "PERMISSION_DENIED", "The caller does not have permission"), "provider_model"),
        (_api_error(400, "FAILED_PRECONDITION", "User location is not supported"), "provider_billing"),
        (_api_error(404, "NOT_FOUND", "models/x is not found"), "provider_model"),
        (_api_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), "provider_error"),
    ],
)
def test_fatal_error_codes(exc: genai_errors.APIError, code: str) -> None:
    assert errs.fatal_error(exc, "gemini-x", model_from_slot=False).code == code
