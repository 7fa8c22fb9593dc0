"""The Turbotext provider against a loopback Turbotext that downloads our published links."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from boothgate.deadline import Deadline
from boothgate.errors import DeadlineReached, ProviderFailed, ProviderNotConfigured, ProviderRefused
from boothgate.providers.base import Kind, ProviderContext, ProviderRequest, ProviderResult
from boothgate.providers.turbotext import TurbotextOptions, TurbotextProvider
from boothgate.records.media_links import MediaLinks
from boothgate.settings import get_settings
from tests.fakes.server import free_port, serve
from tests.fakes.turbotext import FakeTurbotext
from tests.turbotext_support import OurSide, jpeg, mirrored, pixels, prepared
from tests.waits import eventually

PHOTO = prepared(jpeg(320, 240, (220, 60, 40), seed=1))
REFERENCE = prepared(jpeg(200, 300, (40, 70, 220), seed=2))


@dataclass
class Rig:
    fake: FakeTurbotext
    fake_url: str
    ours: OurSide
    ours_url: str
    http: httpx.AsyncClient

    @property
    def links(self) -> MediaLinks:
        return self.ours.links

    def provider(self, **settings: Any) -> TurbotextProvider:
        values: dict[str, Any] = {
            "turbotext_api_key": "tt-test-key",
            "turbotext_base_url": f"{self.fake_url}/api_ai",
            "turbotext_poll_interval_seconds": 0.05,
            "public_base_url": self.ours_url,
        }
        values.update(settings)
        provider = TurbotextProvider(ProviderContext(get_settings(**values), self.http))
        self.ours.registry.providers["turbotext"] = provider
        return provider

    def request(self, kind: Kind, seconds: float = 3.0, **fields: Any) -> ProviderRequest:
        options = TurbotextOptions(**fields.pop("options", {}))
        values: dict[str, Any] = {"reference": REFERENCE, "prompt": "", "publish": self.links.publish}
        values.update(fields)
        return ProviderRequest(
            job_id="job-1",
            kind=kind,
            photo=PHOTO,
            options=options,
            deadline=Deadline.after(seconds),
            **values,
        )

    async def run(
        self, kind: Kind, seconds: float = 3.0, settings: dict[str, Any] | None = None, **fields: Any
    ) -> ProviderResult:
        return await self.provider(**(settings or {})).run(self.request(kind, seconds, **fields))


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeTurbotext, str, OurSide, str]]:
    """One fake Turbotext and one "our side" for the module (starting servers costs more than tests)."""
    fake = FakeTurbotext()
    port = free_port()
    ours = OurSide(f"http://127.0.0.1:{port}")
    with serve(fake.app) as fake_url, serve(ours.app, port=port) as ours_url:
        yield fake, fake_url, ours, ours_url


@pytest.fixture
async def rig(servers: tuple[FakeTurbotext, str, OurSide, str]) -> AsyncIterator[Rig]:
    fake, fake_url, ours, ours_url = servers
    fake.reset()
    ours.links = MediaLinks(ours_url)
    async with httpx.AsyncClient() as http:
        yield Rig(fake, fake_url, ours, ours_url, http)


def assert_result_is_mirrored(result: ProviderResult, source: bytes) -> None:
    assert result.mime == "image/png"
    assert np.array_equal(pixels(result.data), mirrored(source))


# --- each kind, polling -------------------------------------------------------------------------------


async def test_face_swap_sends_reference_as_url_and_photo_as_target(rig: Rig) -> None:
    result = await rig.run(Kind.face_swap, options={"face_restore": False})

    create = rig.fake.calls("create_queue")[0]
    assert create.path == "/api_ai/deepfake_photo"
    assert create.authorized and create.content_type == "application/x-www-form-urlencoded"
    assert create.form["face_restore"] == "False"
    fetched = {f.url: f for f in rig.fake.fetches}
    assert fetched[create.form["url"]].data == REFERENCE.data
    assert fetched[create.form["url_image_target"]].data == PHOTO.data
    assert_result_is_mirrored(result, PHOTO.data)
    assert result.notes["model"] == "deepfake_photo"
    assert result.notes["polls"] == 2  # one reconnect, then done


async def test_background_mixes_photo_with_reference_and_prompt(rig: Rig) -> None:
    result = await rig.run(Kind.background, prompt="золотой закат на пляже")

    create = rig.fake.calls("create_queue")[0]
    assert create.path == "/api_ai/mix_images"
    assert create.form["content"] == "золотой закат на пляже"
    fetched = {f.url: f.data for f in rig.fake.fetches}
    assert fetched[create.form["url_image_target"]] == PHOTO.data
    assert fetched[create.form["url"]] == REFERENCE.data
    assert_result_is_mirrored(result, PHOTO.data)


async def test_prompt_sends_image2image_options_and_joins_the_relative_link(rig: Rig) -> None:
    options = {"strength": 55, "scale": 9, "seed": 1234, "negative_prompt": "blur, text"}
    result = await rig.run(Kind.prompt, prompt="oil painting", options=options)

    create = rig.fake.calls("create_queue")[0]
    assert create.path == "/api_ai/generate_image2image"
    form = create.form
    assert (form["content"], form["strength"], form["scale"], form["seed"]) == (
        "oil painting",
        "55",
        "9",
        "1234",
    )
    assert form["negative_prompt"] == "blur, text"
    assert "url_image_target" not in form
    assert [f.data for f in rig.fake.fetches] == [PHOTO.data]  # the reference is not published
    assert len(rig.links) == 1
    assert_result_is_mirrored(result, PHOTO.data)  # fetched from data.image[0] joined to the site


async def test_an_upstream_instruction_is_sent_verbatim(rig: Rig) -> None:
    await rig.run(Kind.prompt, prompt="short", instruction="A full instruction from DeepSeek.")

    assert rig.fake.calls("create_queue")[0].form["content"] == "A full instruction from DeepSeek."


async def test_a_slot_may_name_another_method_and_extra_fields(rig: Rig) -> None:
    options = {
        "method": "replace_object",
        "extra_fields": {"url_image_target": "{reference_url}", "object": "hat", "strength": ""},
    }
    result = await rig.run(Kind.prompt, prompt="a red hat", options=options)

    form = rig.fake.calls("create_queue")[0].form
    assert rig.fake.calls("create_queue")[0].path == "/api_ai/replace_object"
    assert form["object"] == "hat" and "strength" not in form
    fetched = {f.url: f.data for f in rig.fake.fetches}
    assert fetched[form["url"]] == PHOTO.data and fetched[form["url_image_target"]] == REFERENCE.data
    assert result.notes["model"] == "replace_object"
    assert all(call.path == "/api_ai/replace_object" for call in rig.fake.received)


@pytest.mark.parametrize("style", ["top", "data", "relative"])
async def test_every_documented_result_place_is_found(rig: Rig, style: str) -> None:
    rig.fake.link_style = style
    result = await rig.run(Kind.face_swap)
    assert_result_is_mirrored(result, PHOTO.data)


async def test_reconnect_means_pending_until_done(rig: Rig) -> None:
    rig.fake.reconnects = 5
    result = await rig.run(Kind.background)
    assert result.notes["polls"] == 6
    assert len(rig.fake.calls("create_queue")) == 1


# --- failures -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error_at", ["create", "result"])
async def test_turbotext_failure_text_reaches_the_error(rig: Rig, error_at: str) -> None:
    rig.fake.mode, rig.fake.error_at = "error", error_at
    rig.fake.error_text = "Не удалось обработать изображение"
    with pytest.raises(ProviderFailed) as caught:
        await rig.run(Kind.face_swap)
    assert caught.value.status == 502 and caught.value.code == "provider_error"
    assert "Не удалось обработать изображение" in caught.value.message


async def test_an_empty_balance_is_a_billing_problem_shown_on_the_tab(rig: Rig) -> None:
    rig.fake.mode = "error"  # HTTP 200 {"success": false, "error": "Недостаточно средств на балансе"}
    provider = rig.provider()
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(rig.request(Kind.face_swap))
    assert caught.value.status == 502 and caught.value.code == "provider_billing"
    assert "Недостаточно средств на балансе" in caught.value.message
    assert provider.last_error == caught.value.message


async def test_a_refused_key_answered_with_http_200_is_an_auth_problem(rig: Rig) -> None:
    provider = rig.provider(turbotext_api_key="tt-wrong-key")
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(rig.request(Kind.face_swap))
    assert rig.fake.received[-1].authorized is False
    assert caught.value.code == "provider_auth" and "Неверный API ключ" in caught.value.message
    assert "tt-wrong-key" not in caught.value.message
    assert provider.last_error == caught.value.message


async def test_english_prompt_is_sent_with_original_language_en(rig: Rig) -> None:
    result = await rig.run(Kind.prompt, prompt="", instruction="Two guests on a beach at sunset, keep faces.")
    sent = rig.fake.calls("create_queue")[-1].form
    assert sent["content"].startswith("Two guests") and sent["original_language"] == "en"
    assert result.notes["original_language"] == "en"
    await rig.run(Kind.prompt, prompt="в стиле аниме")
    assert "original_language" not in rig.fake.calls("create_queue")[-1].form


# --- the connection check: one answer per failure class ------------------------------------------


async def test_check_tells_each_failure_class_apart(rig: Rig) -> None:
    good = await rig.provider().check()
    assert good.ok and "accepted" in good.message and "deepfake_photo" in good.message
    assert [r.form["do"] for r in rig.fake.received if r.path.endswith("available_api")][:2] == [
        "create_queue",
        "get_result",
    ]
    assert not rig.fake.jobs  # no paid work was queued

    no_key = await rig.provider(turbotext_api_key=None).check()
    assert not no_key.ok and no_key.message.startswith("No API key")

    refused = await rig.provider(turbotext_api_key="tt-wrong-key").check()
    assert not refused.ok and refused.message.startswith("Key refused")

    rig.fake.mode = "error"  # the balance text
    billing = await rig.provider().check()
    assert not billing.ok and billing.message.startswith("No billing")
    rig.fake.mode = "ok"

    unreachable = await rig.provider(turbotext_base_url=f"http://127.0.0.1:{free_port()}/api_ai").check()
    assert not unreachable.ok and unreachable.message.startswith("Unreachable")
    assert len({no_key.message, refused.message, billing.message, unreachable.message}) == 4


async def test_forbidden_content_is_a_refusal(rig: Rig) -> None:
    rig.fake.mode = "forbidden"
    with pytest.raises(ProviderRefused) as caught:
        await rig.run(Kind.face_swap)
    assert (caught.value.status, caught.value.code) == (502, "provider_refused")
    assert not rig.fake.downloads


async def test_server_errors_on_create_queue_are_retried(rig: Rig) -> None:
    rig.fake.create_failures = 2
    result = await rig.run(Kind.face_swap)
    assert result.notes["attempts"] == 3
    assert_result_is_mirrored(result, PHOTO.data)


async def test_server_errors_until_the_deadline_end_in_time(rig: Rig) -> None:
    rig.fake.create_failures = 10_000
    request = rig.request(Kind.face_swap, seconds=1.5)
    with pytest.raises(DeadlineReached):
        await rig.provider().run(request)
    assert time.monotonic() < request.deadline.at + 0.5
    assert len(rig.fake.calls("create_queue")) >= 3


async def test_network_errors_on_create_queue_are_retried_until_the_deadline(rig: Rig) -> None:
    request = rig.request(Kind.face_swap, seconds=1.0)
    provider = rig.provider(turbotext_base_url=f"http://127.0.0.1:{free_port()}/api_ai")
    with pytest.raises(DeadlineReached):
        await provider.run(request)
    assert request.notes["attempts"] >= 2
    assert time.monotonic() < request.deadline.at + 0.5


async def test_malformed_json_is_a_plain_failure(rig: Rig) -> None:
    rig.fake.mode = "malformed"
    with pytest.raises(ProviderFailed) as caught:
        await rig.run(Kind.face_swap)
    assert caught.value.message == "Turbotext answered deepfake_photo with something that is not JSON."


async def test_a_rejected_key_names_the_setting_and_is_remembered(rig: Rig) -> None:
    provider = rig.provider(turbotext_api_key="wrong-key-123")
    with pytest.raises(ProviderFailed) as caught:
        await provider.run(rig.request(Kind.face_swap))
    assert caught.value.code == "provider_auth"
    assert "BOOTHGATE_TURBOTEXT_API_KEY" in caught.value.message
    assert "wrong-key-123" not in caught.value.message
    assert provider.last_error == caught.value.message

    rig.fake.api_key = "wrong-key-123"  # the operator fixed it on Turbotext's side
    await provider.run(rig.request(Kind.face_swap))
    assert provider.last_error is None


async def test_a_result_link_that_fails_is_retried_once(rig: Rig) -> None:
    rig.fake.link_failures = 1
    result = await rig.run(Kind.face_swap)
    assert [status for _, _, status in rig.fake.downloads] == [404, 200]
    assert_result_is_mirrored(result, PHOTO.data)


async def test_a_result_link_that_fails_twice_is_a_failure(rig: Rig) -> None:
    rig.fake.link_failures = 2
    with pytest.raises(ProviderFailed, match="HTTP 404"):
        await rig.run(Kind.face_swap)
    assert len(rig.fake.downloads) == 2


async def test_a_slow_job_stops_at_the_deadline_and_asks_nothing_after(rig: Rig) -> None:
    rig.fake.mode = "slow"
    request = rig.request(Kind.background, seconds=1.0)
    with pytest.raises(DeadlineReached):
        await rig.provider().run(request)
    ended = time.monotonic()
    assert ended < request.deadline.at + 0.5
    await asyncio.sleep(0.3)
    assert rig.fake.incoming_after(ended) == []
    assert len(rig.fake.calls("get_result")) >= 5


async def test_a_slot_without_what_its_method_needs_is_refused_before_any_call(rig: Rig) -> None:
    with pytest.raises(ProviderNotConfigured) as missing_reference:
        await rig.run(Kind.face_swap, reference=None)
    with pytest.raises(ProviderNotConfigured) as missing_prompt:
        await rig.run(Kind.prompt, prompt="  ")
    assert missing_reference.value.code == "reference_missing"
    assert missing_prompt.value.code == "prompt_missing"
    assert rig.fake.received == []


async def test_without_a_public_address_it_says_what_to_set(rig: Rig) -> None:
    provider = rig.provider(public_base_url="")
    assert "BOOTHGATE_PUBLIC_BASE_URL" in (provider.problem() or "")
    with pytest.raises(ProviderNotConfigured, match="BOOTHGATE_PUBLIC_BASE_URL"):
        await provider.run(rig.request(Kind.face_swap, publish=None))


# --- media links --------------------------------------------------------------------------------------


async def test_published_inputs_vanish_at_the_deadline_and_cannot_be_guessed(rig: Rig) -> None:
    request = rig.request(Kind.face_swap, seconds=0.7)
    await rig.provider().run(request)
    urls = [f.url for f in rig.fake.fetches]
    assert all(f.status == 200 for f in rig.fake.fetches) and len(urls) == 2

    guessed = urls[0].rsplit("/", 1)[0] + "/" + "A" * 43 + ".jpg"
    assert (await rig.http.get(guessed)).status_code == 404
    assert (await rig.http.get(urls[0].replace(".jpg", ".png"))).status_code == 404
    await asyncio.sleep(request.deadline.remaining() + 0.05)
    assert [(await rig.http.get(url)).status_code for url in urls] == [404, 404]


# --- webhook mode ------------------------------------------------------------------------------------


async def test_webhook_mode_delivers_without_polling(rig: Rig) -> None:
    rig.fake.webhook_deliveries = 2  # the duplicate is answered 200 and ignored
    provider = rig.provider(turbotext_mode="webhook")
    result = await provider.run(rig.request(Kind.face_swap))

    hook = rig.fake.calls("create_queue")[0].form["webhook"]
    assert hook == f"{rig.ours_url}/hooks/turbotext/{provider.inbox.secret}"
    assert len(provider.inbox.secret) >= 40
    assert rig.fake.calls("get_result") == []
    assert result.notes["polls"] == 0
    assert_result_is_mirrored(result, PHOTO.data)
    await eventually(lambda: len(rig.fake.deliveries) >= 2, "the fake's second webhook delivery")
    assert [status for _, _, status in rig.fake.deliveries] == [200, 200]


async def test_webhook_mode_polls_once_when_no_delivery_comes(rig: Rig) -> None:
    rig.fake.webhook_deliveries, rig.fake.reconnects = 0, 0
    request = rig.request(Kind.background, seconds=1.2)
    result = await rig.provider(turbotext_mode="webhook").run(request)
    assert result.notes["polls"] == 1 and request.notes["webhook_missed"] is True
    assert_result_is_mirrored(result, PHOTO.data)


async def test_webhook_mode_gives_up_at_the_deadline(rig: Rig) -> None:
    rig.fake.mode = "slow"
    request = rig.request(Kind.background, seconds=1.0)
    with pytest.raises(DeadlineReached):
        await rig.provider(turbotext_mode="webhook").run(request)
    assert time.monotonic() < request.deadline.at + 0.5
    assert len(rig.fake.calls("get_result")) == 1


async def test_the_webhook_route_refuses_a_wrong_secret(rig: Rig) -> None:
    provider = rig.provider(turbotext_mode="webhook")
    body = {"success": True, "asyncid": 1, "uploaded_image": "http://example.invalid/x.png"}
    wrong = await rig.http.post(f"{rig.ours_url}/hooks/turbotext/guess", json=body)
    right = await rig.http.post(f"{rig.ours_url}/hooks/turbotext/{provider.inbox.secret}", json=body)
    junk = await rig.http.post(f"{rig.ours_url}/hooks/turbotext/{provider.inbox.secret}", content=b"[1")
    assert (wrong.status_code, right.status_code, junk.status_code) == (404, 200, 400)
    assert right.json()["outcome"] == "early"  # nobody waits for asyncid 1 yet: kept briefly
