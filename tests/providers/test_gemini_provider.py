"""The Gemini provider against the loopback fake, through the real google-genai SDK.

The SDK is pointed at the fake by the base-URL setting; every test asserts on what the fake received
or on what the provider answered, never on mocks of our own code.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from boothgate.deadline import Deadline
from boothgate.errors import (
    DeadlineReached,
    ProviderFailed,
    ProviderNotConfigured,
    ProviderRefused,
    RateLimited,
)
from boothgate.providers.base import Kind, ProviderContext, ProviderRequest
from boothgate.providers.gemini import GeminiProvider
from boothgate.providers.gemini_options import GeminiOptions
from boothgate.settings import get_settings
from tests.conftest import open_image
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, looks_inverted, mean_colour, prepared

KEY = "test-gemini-key"
PROMPT = "as astronauts on the moon"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(fake_server: tuple[GeminiFake, str]) -> GeminiFake:
    fake_server[0].reset()
    return fake_server[0]


@pytest.fixture
def base_url(fake_server: tuple[GeminiFake, str]) -> str:
    return fake_server[1]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def provider_for(http: httpx.AsyncClient, base_url: str) -> Any:
    def build(**overrides: Any) -> GeminiProvider:
        values: dict[str, Any] = {"gemini_api_key": KEY, "gemini_base_url": base_url, **overrides}
        return GeminiProvider(ProviderContext(get_settings(**values), http))

    return build


@pytest.fixture
def provider(provider_for: Any) -> GeminiProvider:
    return provider_for()


def job(
    kind: Kind = Kind.face_swap,
    *,
    reference: bool = True,
    deadline: float = 3.0,
    prompt: str = PROMPT,
    instruction: str | None = None,
    size: tuple[int, int] = (320, 240),
    **options: Any,
) -> ProviderRequest:
    return ProviderRequest(
        job_id="job-1",
        kind=kind,
        photo=prepared(*size, PHOTO_TINT),
        reference=prepared(200, 300, REFERENCE_TINT, fmt="PNG") if reference else None,
        prompt=prompt,
        options=GeminiOptions(**options),
        deadline=Deadline.after(deadline),
        instruction=instruction,
    )


# --- what goes over the wire --------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
async def test_each_kind_sends_photo_reference_and_instruction(
    provider: GeminiProvider, fake: GeminiFake, kind: Kind
) -> None:
    request = job(kind)
    result = await provider.run(request)

    sent = fake.last
    assert sent.model == "gemini-nano-banana-2.1"
    assert sent.api_key == KEY
    assert [(i.mime, i.width, i.height) for i in sent.images] == [
        ("image/jpeg", 320, 240),
        ("image/png", 200, 300),
    ]
    assert sent.images[0].data == request.photo.data
    assert sent.images[1].data == request.reference.data  # type: ignore[union-attr]
    assert PROMPT in sent.text
    assert "{prompt}" not in sent.text and "watermark" in sent.text.lower()
    # The text comes after the images, as the templates speak of "the first image".
    parts = sent.body["contents"][0]["parts"]
    assert "text" in parts[-1] and all("text" not in p for p in parts[:-1])
    assert sent.generation_config["responseModalities"] == ["IMAGE"]
    assert sent.image_config == {"aspectRatio": "4:3"}  # nearest to 320×240; no size on "auto"
    assert sent.headers["x-server-timeout"] in {"2", "3"}  # Gemini is told the time left, too

    # The fake's answer is the inverted photo with the inverted reference on its right half.
    assert result.mime == "image/png"
    assert looks_inverted(mean_colour(result.data, (0.05, 0.1, 0.45, 0.9)), PHOTO_TINT)
    assert looks_inverted(mean_colour(result.data, (0.55, 0.1, 0.95, 0.9)), REFERENCE_TINT)


async def test_kind_templates_say_different_things(provider: GeminiProvider, fake: GeminiFake) -> None:
    texts = {}
    for kind in Kind:
        await provider.run(job(kind))
        texts[kind] = fake.last.text
    assert "face" in texts[Kind.face_swap].lower()
    assert "background" in texts[Kind.background].lower()
    assert "style" in texts[Kind.prompt].lower()
    assert len(set(texts.values())) == 3


async def test_prompt_without_reference_sends_one_image(provider: GeminiProvider, fake: GeminiFake) -> None:
    result = await provider.run(job(Kind.prompt, reference=False))
    assert len(fake.last.images) == 1
    assert looks_inverted(mean_colour(result.data, (0.55, 0.1, 0.95, 0.9)), PHOTO_TINT)


async def test_upstream_instruction_is_sent_verbatim(provider: GeminiProvider, fake: GeminiFake) -> None:
    instruction = "Turn everyone into {careful} watercolour figures."
    await provider.run(job(Kind.prompt, instruction=instruction))
    assert fake.last.texts == [instruction]


async def test_operator_template_is_used(provider_for: Any, fake: GeminiFake) -> None:
    provider = provider_for(gemini_template_background="Put them on {prompt}. {keep braces}")
    await provider.run(job(Kind.background, prompt="  a beach  "))
    assert fake.last.texts == ["Put them on a beach. {keep braces}"]


async def test_portrait_photo_gets_portrait_ratio(provider: GeminiProvider, fake: GeminiFake) -> None:
    await provider.run(job(size=(216, 384)))
    assert fake.last.image_config["aspectRatio"] == "9:16"


async def test_slot_options_choose_model_ratio_and_size(provider: GeminiProvider, fake: GeminiFake) -> None:
    request = job(model="gemini-3-pro-image", aspect_ratio="1:1", image_size="2K")
    await provider.run(request)
    assert fake.last.model == "gemini-3-pro-image"
    assert fake.last.image_config == {"aspectRatio": "1:1", "imageSize": "2K"}
    assert request.notes["model"] == "gemini-3-pro-image"
    assert request.notes["image_size"] == "2K"


async def test_image_size_the_table_says_a_model_lacks_is_not_sent(provider: GeminiProvider, fake: GeminiFake) -> None:
    # The capability table (a setting) says the lite model takes only 1K; the fake answers 400 to 4K there.
    request = job(model="gemini-3.1-flash-lite-image", image_size="4K")
    await provider.run(request)
    assert fake.last.model == "gemini-3.1-flash-lite-image"
    assert "imageSize" not in fake.last.image_config
    assert request.notes["image_size"] is None
    assert len(fake.received) == 1


async def test_default_model_comes_from_settings(provider_for: Any, fake: GeminiFake) -> None:
    await provider_for(gemini_model="gemini-3-pro-image").run(job())
    assert fake.last.model == "gemini-3-pro-image"


# --- answers ------------------------------------------------------------------------------------


async def test_thought_images_are_skipped(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.push("thoughts")
    request = job()
    result = await provider.run(request)
    # The drafts are flat grey 64×48; the answer is the final, derived image.
    assert looks_inverted(mean_colour(result.data, (0.05, 0.1, 0.45, 0.9)), PHOTO_TINT)
    assert result.notes["usage"]["thought_tokens"] == 300


async def test_notes_record_model_attempts_usage_and_cost(provider_for: Any, fake: GeminiFake) -> None:
    provider = provider_for(gemini_prices_usd='{"gemini-nano-banana": 0.134}')
    fake.push("no_image")
    request = job()
    result = await provider.run(request)
    expected_usage = {"prompt_tokens": 2580, "output_tokens": 2240, "total_tokens": 4820}
    for notes in (request.notes, result.notes):
        assert notes["model"] == "gemini-nano-banana-2.1"
        assert notes["attempts"] == 2
        assert notes["usage"] == expected_usage
        assert notes["cost_usd"] == pytest.approx(0.134)
        assert notes["problems"] == ["NO_IMAGE"]
    assert KEY not in repr(result.notes)


async def test_no_image_is_retried_until_an_image_comes(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.push("no_image", 3)
    request = job()
    result = await provider.run(request)
    assert len(fake.received) == 4
    assert request.notes["attempts"] == 4
    assert looks_inverted(mean_colour(result.data, (0.05, 0.1, 0.45, 0.9)), PHOTO_TINT)


async def test_text_only_answer_is_retried(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.push("text_only")
    request = job()
    await provider.run(request)
    assert request.notes["problems"] == ["text only"]
    assert len(fake.received) == 2


async def test_endless_no_image_stops_after_max_empty_answers(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.default_mode = "no_image"
    request = job(deadline=10)
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(request)
    assert caught.value.code == "provider_no_image"
    assert len(fake.received) == GeminiProvider.max_empty_answers
    assert "NO_IMAGE ×10" in caught.value.message
    assert request.notes["cost_usd"] == 0


async def test_prompt_blocked_is_refused_without_retry(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.default_mode = "prompt_blocked"
    with pytest.raises(ProviderRefused) as caught:
        await provider.run(job())
    assert caught.value.status == 502 and caught.value.code == "provider_refused"
    assert "PROHIBITED_CONTENT" in caught.value.message
    assert len(fake.received) == 1


@pytest.mark.parametrize("reason", ["IMAGE_SAFETY", "SAFETY", "IMAGE_PROHIBITED_CONTENT", "RECITATION"])
async def test_candidate_blocked_is_refused(provider: GeminiProvider, fake: GeminiFake, reason: str) -> None:
    fake.default_mode = "candidate_blocked"
    fake.finish_reason = reason
    with pytest.raises(ProviderRefused) as caught:
        await provider.run(job())
    assert reason in caught.value.message
    assert len(fake.received) == 1


# --- errors -------------------------------------------------------------------------------------


async def test_429_waits_the_retry_delay_when_it_fits(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.push("rate_limited")
    fake.retry_delay = "0.8s"
    started = time.monotonic()
    request = job(deadline=4)
    await provider.run(request)
    assert time.monotonic() - started >= 0.8
    assert request.notes["problems"] == ["429 RESOURCE_EXHAUSTED"]
    assert len(fake.received) == 2


async def test_429_with_a_delay_past_the_deadline_is_rate_limited(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.default_mode = "rate_limited"
    fake.retry_delay = "47s"
    request = job(deadline=3)
    with pytest.raises(RateLimited) as caught:
        await provider.run(request)
    # refused at once, not after sleeping toward the deadline: over 1 s of slack either way
    assert request.deadline.remaining() > 1.0
    assert caught.value.status == 429
    assert "47 s" in caught.value.message
    assert len(fake.received) == 1


async def test_503_is_retried_with_backoff(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.push("unavailable", 2)
    request = job(deadline=4)
    started = time.monotonic()
    await provider.run(request)
    assert time.monotonic() - started >= 0.5 + 1.0  # two pauses: 0.5 s, then 1 s
    assert request.notes["problems"] == ["503 UNAVAILABLE", "503 UNAVAILABLE"]


async def test_500_is_retried(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.push("internal")
    request = job()
    await provider.run(request)
    assert request.notes["attempts"] == 2


async def test_endless_503_ends_before_the_deadline(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.default_mode = "unavailable"
    request = job(deadline=2.5)
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(request)
    assert not request.deadline.expired
    assert "503 UNAVAILABLE" in caught.value.message
    assert (caught.value.status, caught.value.code) == (502, "provider_unavailable")


async def test_slow_answer_is_cut_at_the_deadline(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.default_mode = "slow"
    request = job(deadline=1.5)
    with pytest.raises(DeadlineReached):
        await provider.run(request)
    # cut at the deadline, not when the fake's 5 s answer came: 0.5 s of slack for a loaded machine
    assert time.monotonic() - request.deadline.at < 0.5


async def test_slow_answer_within_the_deadline_succeeds(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.push("slow")
    fake.slow_seconds = 0.5
    result = await provider.run(job(deadline=3))
    assert open_image(result.data).size[0] > 0, "a whole image came back"
    assert len(fake.received) == 1, "waited for the slow answer instead of asking again"


@pytest.mark.parametrize("mode", ["invalid_key"])
async def test_bad_key_names_the_setting(provider: GeminiProvider, fake: GeminiFake, mode: str) -> None:
    fake.default_mode = mode
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(job())
    assert caught.value.code == "provider_auth" and caught.value.status == 502
    assert "BOOTHGATE_GEMINI_API_KEY" in caught.value.message
    assert provider.last_error == caught.value.message
    assert len(fake.received) == 1


async def test_wrong_key_is_caught_and_never_repeated(provider_for: Any, fake: GeminiFake) -> None:
    provider = provider_for(gemini_api_key="AIza-wrong-key")
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(job())
    assert fake.last.api_key == "AIza-wrong-key"
    assert len(fake.received) == 1, "a wrong key is never asked again"
    assert caught.value.code == "provider_auth"
    assert "AIza-wrong-key" not in caught.value.message


async def test_billing_names_the_key(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.default_mode = "billing"
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(job())
    assert caught.value.code == "provider_billing"
    assert "billing" in caught.value.message.lower() and "BOOTHGATE_GEMINI_API_KEY" in caught.value.message
    assert provider.last_error == caught.value.message


async def test_unknown_default_model_names_the_setting(provider_for: Any, fake: GeminiFake) -> None:
    provider = provider_for(gemini_model="gemini-3-pro-image-preview")
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(job())
    assert caught.value.code == "provider_model"
    assert "'gemini-3-pro-image-preview'" in caught.value.message
    assert "BOOTHGATE_GEMINI_MODEL" in caught.value.message
    assert provider.last_error == caught.value.message


async def test_unknown_slot_model_names_the_slot_option(provider: GeminiProvider, fake: GeminiFake) -> None:
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(job(model="gemini-2.0-flash-exp"))
    assert caught.value.code == "provider_model"
    assert "slot's model option" in caught.value.message


async def test_success_clears_the_last_error(provider: GeminiProvider, fake: GeminiFake) -> None:
    fake.push("invalid_key")
    with pytest.raises(ProviderFailed):
        await provider.run(job())
    assert provider.last_error
    await provider.run(job())
    assert provider.last_error is None
    assert provider.describe()["last_error"] is None


async def test_missing_key_is_not_configured(provider_for: Any, fake: GeminiFake) -> None:
    provider = provider_for(gemini_api_key="")
    with pytest.raises(ProviderNotConfigured):
        await provider.run(job())
    assert fake.received == []


async def test_unreachable_base_url_ends_before_the_deadline(http: httpx.AsyncClient) -> None:
    from tests.fakes.server import free_port

    settings = get_settings(gemini_api_key=KEY, gemini_base_url=f"http://127.0.0.1:{free_port()}")
    provider = GeminiProvider(ProviderContext(settings, http))
    request = job(deadline=2)
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(request)
    assert not request.deadline.expired
    assert "connection" in caught.value.message
    assert caught.value.status == 502


async def test_environment_cannot_redirect_the_sdk(
    provider: GeminiProvider, fake: GeminiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_API_KEY", "env-key")
    monkeypatch.setenv("GEMINI_API_KEY", "env-key-2")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1")
    monkeypatch.setenv("GOOGLE_GENAI_CLIENT_MODE", "replay")
    await provider.run(job())
    assert fake.last.api_key == KEY


def test_options_schema_has_descriptions_and_defaults() -> None:
    schema = GeminiOptions.model_json_schema()
    for name, field in schema["properties"].items():
        assert field.get("description"), name
        assert "default" in field, name
    assert GeminiOptions().model_dump() == {"model": "", "aspect_ratio": "auto", "image_size": "auto"}
