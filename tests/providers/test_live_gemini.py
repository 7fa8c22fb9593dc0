"""Issue 11 on the Gemini tab, through the whole server: the real google-genai SDK against the loopback fake
that serves a model catalogue and the real error bodies.

Each test starts its own server (settings differ), sharing one fake that is reset between tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from boothgate.web.app import create_app
from tests.conftest import Booth, booth_settings, make_jpeg
from tests.fakes.gemini import CURRENT_MODELS, GeminiFake
from tests.fakes.server import free_port, serve

KEY = "live-test-gemini-key"
UNSET = object()  # leave a setting at its default


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
def start(tmp_path: Any, fake_server: tuple[GeminiFake, str]) -> Iterator[Any]:
    contexts: list[Any] = []

    def start_booth(**overrides: Any) -> Booth:
        values: dict[str, Any] = {"gemini_api_key": KEY, "gemini_base_url": fake_server[1], "deadline_seconds": 20.0}
        values.update(overrides)
        values = {k: v for k, v in values.items() if v is not UNSET}
        settings = booth_settings(tmp_path / f"s{len(contexts)}", **values)
        app = create_app(settings, {})  # the built-in providers, nothing replaced
        context = serve(app)
        url = context.__enter__()
        contexts.append(context)
        return Booth(url, settings, app)

    yield start_booth
    for context in reversed(contexts):
        context.__exit__(None, None, None)


_seeds = iter(range(500, 10_000))


def photo() -> bytes:
    return make_jpeg(640, 480, seed=next(_seeds))


async def get(booth: Booth, path: str, **params: Any) -> Any:
    async with booth.api() as client:
        response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def check(booth: Booth) -> dict[str, Any]:
    async with booth.api() as client:
        response = await client.post("/api/providers/gemini/check")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"ok", "message", "seconds"}
    return body


async def job_of(booth: Booth, job_id: str) -> dict[str, Any]:
    result: dict[str, Any] = await get(booth, f"/api/jobs/{job_id}")
    return result


# --- a fresh install -----------------------------------------------------------------------------


async def test_fresh_install_with_only_a_key_serves_the_default_model(start: Any, fake: GeminiFake) -> None:
    booth = start()  # nothing but the key and the fake's address: the default model everywhere else
    await booth.configure("gemini", 1, kind="prompt", prompt="as an astronaut")
    answer = await booth.post("gemini", 1, photo())
    assert answer.status == 200, answer.body[:300]
    assert fake.last.model == "gemini-nano-banana-2.1"
    assert set(fake.catalogue) == set(CURRENT_MODELS)  # the fake lists only today's models

    listing = await get(booth, "/api/providers/gemini/models", refresh=1)
    # Only generateContent image models: not the text model, the embeddings or Imagen's predict.
    assert {m["id"] for m in listing["models"]} == set(CURRENT_MODELS)
    assert {m["label"] for m in listing["models"]} == set(CURRENT_MODELS.values())
    assert listing["problem"] is None and listing["checked_at"]
    assert listing["current"] == "gemini-nano-banana-2.1" and listing["current_offered"] is True
    assert fake.list_calls >= 2  # several pages: the SDK's pager was followed


async def test_model_list_of_an_unreachable_service_is_empty_with_a_problem(start: Any) -> None:
    booth = start(gemini_base_url=f"http://127.0.0.1:{free_port()}")
    listing = await get(booth, "/api/providers/gemini/models", refresh=1)
    assert listing["models"] == [] and listing["problem"]
    assert listing["current_offered"] is None  # unknown, not a false alarm


# --- a saved model that disappears is flagged before a guest meets it ---------------------------


async def test_a_slot_whose_model_disappears_is_flagged_on_its_card_and_tab(start: Any, fake: GeminiFake) -> None:
    booth = start()
    await booth.configure("gemini", 3, kind="prompt", prompt="p", options={"model": "gemini-3-pro-image"})
    await get(booth, "/api/providers/gemini/models", refresh=1)
    async with booth.api() as client:
        page = (await client.get("/tabs/gemini/3?lang=en")).text
    assert 'data-model-missing="gemini-3-pro-image"' not in page

    del fake.catalogue["gemini-3-pro-image"]  # Google shuts it down
    await get(booth, "/api/providers/gemini/models", refresh=1)
    async with booth.api() as client:
        page = (await client.get("/tabs/gemini?lang=en")).text  # the overview
        card = (await client.get("/tabs/gemini/3?lang=en")).text  # the slot's editor
        settings_page = (await client.get("/settings?lang=en")).text
    assert 'data-model-missing="gemini-3-pro-image"' in card
    assert "not offered by Gemini any more" in card
    assert "gemini-nano-banana-2.1" in card  # what to choose instead
    assert "1 slot(s) use a model Gemini no longer offers" in page  # on the tab too
    row = page[page.rindex("<a ", 0, page.index('id="slot-3"')) : page.index('id="slot-4"')]
    assert "has-warning" in row and "not offered by Gemini any more" in row  # the overview's warning dot
    assert '<datalist id="models-gemini">' in settings_page and 'value="gemini-nano-banana-2.1"' in settings_page
    assert not [r for r in fake.received if r.model == "gemini-3-pro-image"]  # no guest photo went there


# --- errors that tell the truth -----------------------------------------------------------------


async def test_free_tier_key_answers_provider_billing_without_waiting(start: Any, fake: GeminiFake) -> None:
    booth = start(deadline_seconds=40.0)
    fake.default_mode = "free_tier"
    fake.retry_delay = "30s"  # a rate-limit reading would wait 30 s: it fits the 40 s deadline
    await booth.configure("gemini", 1, kind="prompt", prompt="p")
    started = time.monotonic()
    answer = await booth.post("gemini", 1, photo())
    elapsed = time.monotonic() - started
    body = answer.json()
    assert (answer.status, body["error"]) == (502, "provider_billing")
    assert "enable billing" in body["message"] and KEY not in body["message"]
    assert len(fake.received) == 1  # one call, no second attempt after retryDelay
    assert elapsed < 25  # generous: far below the 30 s retryDelay it did not wait for
    job = await job_of(booth, body["job_id"])
    assert job["provider_notes"]["attempts"] == 1

    providers = await get(booth, "/api/providers")
    gemini = next(p for p in providers if p["name"] == "gemini")
    assert "no paid quota" in gemini["last_error"]  # shown on the tab until a success
    async with booth.api() as client:
        page = (await client.get("/tabs/gemini?lang=en")).text
    assert "no paid quota for image models" in page
    verdict = await check(booth)
    assert not verdict["ok"] and "billing" in verdict["message"]


async def test_account_blocked_for_policy_is_an_operator_error_without_retry(start: Any, fake: GeminiFake) -> None:
    booth = start()
    fake.default_mode = "account_blocked"
    await booth.configure("gemini", 1, kind="prompt", prompt="p")
    answer = await booth.post("gemini", 1, photo())
    body = answer.json()
    assert (answer.status, body["error"]) == (502, "provider_account")
    assert "blocked" in body["message"] and "PUP_LIMITED_DISABLED" in body["message"]
    assert len(fake.received) == 1


async def test_403_without_a_key_reason_names_the_model(start: Any, fake: GeminiFake) -> None:
    booth = start()
    fake.default_mode = "no_access"
    await booth.configure("gemini", 1, kind="prompt", prompt="p", options={"model": "gemini-3-pro-image"})
    answer = await booth.post("gemini", 1, photo())
    body = answer.json()
    assert (answer.status, body["error"]) == (502, "provider_model")
    assert "no access to model 'gemini-3-pro-image'" in body["message"]
    assert "rejected the API key" not in body["message"]


# --- capabilities as data ------------------------------------------------------------------------


async def test_a_2k_slot_on_a_model_refusing_image_size_still_gets_its_image(start: Any, fake: GeminiFake) -> None:
    booth = start()
    fake.catalogue["gemini-nano-banana-3-preview"] = "A model the size table does not know yet"
    fake.image_sizes["gemini-nano-banana-3-preview"] = []  # it takes no imageSize at all
    options = {"model": "gemini-nano-banana-3-preview", "image_size": "2K"}
    await booth.configure("gemini", 2, kind="prompt", prompt="p", options=options)

    answer = await booth.post("gemini", 2, photo())
    assert answer.status == 200, answer.body[:300]
    first, retry = fake.received
    assert first.image_config.get("imageSize") == "2K"
    assert "imageSize" not in retry.image_config and retry.image_config.get("aspectRatio") == "4:3"
    notes = (await job_of(booth, answer.headers["x-job-id"]))["provider_notes"]
    assert notes["dropped_fields"] == ["imageSize"]
    assert "imageSize refused" in notes["problems"][0]

    # Remembered: the next photo goes out without it, in one call.
    fake.received.clear()
    assert (await booth.post("gemini", 2, photo())).status == 200
    assert len(fake.received) == 1 and "imageSize" not in fake.received[0].image_config


# --- the connection check tells each failure class apart ----------------------------------------


async def test_check_tells_each_failure_class_apart(start: Any, fake: GeminiFake) -> None:
    good = await check(start())
    assert good["ok"] and "gemini-nano-banana-2.1" in good["message"]

    no_key = await check(start(gemini_api_key=None))
    assert not no_key["ok"] and no_key["message"].startswith("No API key")

    refused = await check(start(gemini_api_key="AIza-not-this-one"))
    assert not refused["ok"] and refused["message"].startswith("Key refused")
    assert "AIza-not-this-one" not in refused["message"]

    unreachable = await check(start(gemini_base_url=f"http://127.0.0.1:{free_port()}"))
    assert not unreachable["ok"] and unreachable["message"].startswith("Unreachable")

    retired = await check(start(gemini_model="gemini-3.1-flash-image"))
    assert not retired["ok"] and "does not offer the model 'gemini-3.1-flash-image'" in retired["message"]

    messages = [no_key["message"], refused["message"], unreachable["message"], retired["message"]]
    assert len(set(messages)) == len(messages)
    assert not [r for r in fake.received if r.model]  # no image was generated by any check


async def test_lists_are_read_again_when_the_base_url_changes(
    start: Any, fake_server: tuple[GeminiFake, str], fake: GeminiFake
) -> None:
    booth = start(gemini_base_url=UNSET)  # Google's own address: unreachable from the tests
    first = await get(booth, "/api/providers/gemini/models")
    assert first["models"] == [] and first["problem"]

    async with booth.api() as client:
        changed = await client.put("/api/settings", json={"gemini_base_url": fake_server[1]})
    assert changed.status_code == 200, changed.text
    for _ in range(100):  # read again in the background, without being asked
        listing = await get(booth, "/api/providers/gemini/models")
        if listing["models"]:
            break
        await asyncio.sleep(0.1)
    assert {m["id"] for m in listing["models"]} == set(CURRENT_MODELS) and listing["problem"] is None
