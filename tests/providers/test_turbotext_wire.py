"""Turbotext answer shapes, slot options and webhook matching, without servers."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel, ValidationError

from boothgate.deadline import Deadline
from boothgate.errors import ProviderFailed, ProviderRefused
from boothgate.providers.base import Kind, PreparedImage, ProviderRequest
from boothgate.providers.turbotext import TurbotextOptions, build_form, options_of
from boothgate.providers.turbotext_inbox import WebhookInbox
from boothgate.providers.turbotext_wire import failure, finished_link, site_of

SITE = site_of("https://www.turbotext.ru/api_ai")


def test_the_site_is_the_base_urls_scheme_and_host() -> None:
    assert SITE == "https://www.turbotext.ru/"
    assert site_of("http://127.0.0.1:8123/api_ai/") == "http://127.0.0.1:8123/"


@pytest.mark.parametrize(
    ("answer", "link"),
    [
        (
            {"success": True, "uploaded_image": "https://cdn.example/a.png", "data": {"image": ["/b.png"]}},
            "https://cdn.example/a.png",
        ),
        (
            {"success": True, "data": {"uploaded_image": "https://cdn.example/c.png"}},
            "https://cdn.example/c.png",
        ),
        ({"success": True, "data": {"image": ["image/d.png"]}}, "https://www.turbotext.ru/image/d.png"),
        (
            {"success": True, "data": {"image": ["/download.php?f=e.png"]}},
            "https://www.turbotext.ru/download.php?f=e.png",
        ),
    ],
)
def test_the_result_link_is_found_in_the_documented_order(answer: dict, link: str) -> None:
    assert finished_link(answer, SITE) == link


def test_reconnect_is_pending_whatever_success_says() -> None:
    assert finished_link({"success": False, "action": "reconnect"}, SITE) is None
    assert finished_link({"success": True, "action": "reconnect", "error": "x"}, SITE) is None


def test_failures_and_refusals() -> None:
    with pytest.raises(ProviderRefused):
        finished_link({"success": True, "data": {"forbidden_content": True, "image": ["/x.png"]}}, SITE)
    with pytest.raises(ProviderFailed, match="Лицо не найдено"):
        finished_link({"success": False, "error": "Лицо не найдено"}, SITE)
    with pytest.raises(ProviderFailed, match="without a result image"):
        finished_link({"success": True, "data": {"image": []}}, SITE)


def test_options_refuse_what_turbotext_or_boothgate_would_not_take() -> None:
    with pytest.raises(ValidationError):
        TurbotextOptions(method="../deepfake_photo")
    with pytest.raises(ValidationError):
        TurbotextOptions(extra_fields={"webhook": "https://evil.example/"})
    with pytest.raises(ValidationError):
        TurbotextOptions(negative_prompt=" ".join(["word"] * 81))
    with pytest.raises(ValidationError):
        TurbotextOptions(strength=81)


def test_forms_by_kind() -> None:
    options = TurbotextOptions()
    assert build_form(Kind.face_swap, "ignored", options) == (
        "deepfake_photo",
        {"url": "{reference_url}", "url_image_target": "{photo_url}", "face_restore": "True"},
    )
    assert build_form(Kind.background, "", options) == (
        "mix_images",
        {"url_image_target": "{photo_url}", "url": "{reference_url}"},
    )
    assert build_form(Kind.prompt, "аниме", options) == (
        "generate_image2image",
        {"url": "{photo_url}", "content": "аниме", "strength": "40", "scale": "7.5"},
    )
    # English text (what DeepSeek writes) is marked as such; Russian stays Turbotext's default.
    assert build_form(Kind.prompt, "anime style", options)[1]["original_language"] == "en"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Неверный API ключ", "provider_auth"),
        ("Invalid api key", "provider_auth"),
        ("Недостаточно средств на балансе", "provider_billing"),
        ("API доступен только на платном тарифе", "provider_billing"),
        ("Не удалось загрузить изображение url", "provider_error"),
    ],
)
def test_success_false_texts_are_sorted_into_operator_problems(text: str, code: str) -> None:
    assert failure({"success": False, "error": text}).code == code


def test_seed_starts_at_one_and_an_old_zero_means_random() -> None:
    assert TurbotextOptions.model_validate({"seed": 0}).seed is None
    assert TurbotextOptions.model_validate({"seed": 1}).seed == 1
    with pytest.raises(ValidationError):
        TurbotextOptions.model_validate({"seed": -3})


async def test_a_delivery_that_beats_create_queues_answer_is_kept_for_its_job() -> None:
    inbox = WebhookInbox()
    assert inbox.deliver({"success": True, "asyncid": 7, "uploaded_image": "u"}) == "early"
    assert inbox.deliver({"success": True, "asyncid": 7, "uploaded_image": "u"}) == "duplicate"
    body = await inbox.wait(7, Deadline.after(0.5))
    assert body is not None and body["uploaded_image"] == "u"
    assert inbox.deliver({"success": True, "asyncid": "7"}) == "duplicate"


async def test_a_delivery_completes_the_waiting_job_once_and_late_ones_are_ignored() -> None:
    inbox = WebhookInbox()
    waiting = asyncio.create_task(inbox.wait("42", Deadline.after(1)))
    await asyncio.sleep(0.01)
    assert inbox.deliver({"success": True, "asyncid": 42, "uploaded_image": "a"}) == "delivered"
    assert (await waiting) == {"success": True, "asyncid": 42, "uploaded_image": "a"}
    assert inbox.deliver({"success": True, "asyncid": 42}) == "duplicate"

    assert await inbox.wait(43, Deadline.after(0.05)) is None
    assert inbox.deliver({"success": True, "asyncid": 43}) == "late"
    assert inbox.deliver({"success": True}) == "unknown"
    assert inbox.waiting == 0


def test_options_from_another_tab_keep_what_fits() -> None:
    class Foreign(BaseModel):
        strength: int = 70
        temperature: float = 0.3

    def request(options: BaseModel) -> ProviderRequest:
        photo = PreparedImage(b"", "image/jpeg", 1, 1)
        return ProviderRequest("j", Kind.prompt, photo, None, "p", options, Deadline.after(1))

    assert options_of(request(Foreign())).strength == 70
    assert options_of(request(Foreign(strength=500))) == TurbotextOptions()
