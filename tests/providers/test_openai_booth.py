"""The OpenAI tab through the whole booth path: `POST /booth/openai/N` on a real socket, the spine, the
real `openai` SDK pointed at the loopback fake by BOOTHGATE_OPENAI_BASE_URL, and back.

One boothgate server and one fake serve the whole module; each test configures its own slot and posts
its own photo, and the fake is reset between tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import BoothAnswer
from boothgate.providers.base import ProviderContext
from boothgate.providers.openai import OpenAIProvider
from tests.conftest import Booth, Tab, booth_settings, open_image
from tests.fakes.openai import FakeOpenAI
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, encode, gradient, looks_inverted, mean_colour
from tests.waits import server_seconds

KEY = "sk-booth-test-openai-key-0123"
DEADLINE = 3.0
SLACK = 0.5


TAB = "openai"  # the module's server and fake: `tab_rig` in tests/conftest.py
# The default fidelity list is empty since 2026-12-01 (issue 28); a model named here gets high fidelity.
TAB_SETTINGS = {"deadline_seconds": DEADLINE, "openai_input_fidelity_models": "gpt-image-1.5"}


@pytest.fixture
def fake(tab: Tab) -> FakeOpenAI:
    return tab.fake  # type: ignore[no-any-return]


@pytest.fixture
def booth(tab: Tab) -> Booth:
    return tab.booth


@pytest.fixture
def fake_server(tab_rig: Tab) -> tuple[FakeOpenAI, str]:
    """The fake and the address of its gate (which passes everything without a fault marker)."""
    return tab_rig.fake, tab_rig.gate.url + "/v1"


_seed = iter(range(1, 10_000))


def photo(width: int = 1200, height: int = 800) -> bytes:
    """A fresh photo each call (the booth reuses results for identical photos)."""
    tint = tuple(max(0, c - next(_seed) % 7) for c in PHOTO_TINT)
    return encode(gradient(width, height, tint))  # type: ignore[arg-type]


REFERENCE = encode(gradient(600, 900, REFERENCE_TINT))


async def slot(booth: Booth, number: int, kind: str = "prompt", **fields: Any) -> None:
    fields.setdefault("prompt", f"as astronauts on the moon {number}")
    await booth.configure("openai", number, kind=kind, **fields)
    if kind in ("face_swap", "background"):
        await booth.set_reference("openai", number, REFERENCE)


async def post(booth: Booth, number: int, data: bytes | None = None) -> tuple[BoothAnswer, float]:
    started = time.monotonic()
    answer = await booth.post("openai", number, data or photo())
    return answer, time.monotonic() - started


def error_of(answer: BoothAnswer) -> str:
    return str(answer.json()["error"])


# --- success --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "kind"), [(1, "face_swap"), (2, "background"), (3, "prompt")])
async def test_each_kind_end_to_end(booth: Booth, fake: FakeOpenAI, number: int, kind: str) -> None:
    await slot(booth, number, kind)
    answer, _ = await post(booth, number, photo(2400, 1350))  # 16:9

    assert answer.status == 200, answer.body[:300]
    assert answer.content_type == "image/jpeg"
    [sent] = fake.received
    assert sent.authorization == f"Bearer {KEY}"
    assert sent.content_type.startswith("multipart/form-data")
    expected = 2 if kind != "prompt" else 1
    assert len(sent.images) == expected
    assert all(image.field == "image[]" for image in sent.images)  # several images: repeated image[]
    assert all(image.mime == "image/jpeg" for image in sent.images)
    assert sent.images[0].width / sent.images[0].height == pytest.approx(16 / 9, abs=0.01)
    if kind != "prompt":
        assert (sent.images[1].width, sent.images[1].height) == (600, 900)  # the reference, second
    assert f"as astronauts on the moon {number}" in sent.prompt
    assert sent.model == "gpt-image-2"
    assert sent.fields["quality"] == "medium" and sent.fields["output_format"] == "jpeg"
    # gpt-image-2 takes free sizes: the photo's own shape, sides divisible by 16.
    width, height = (int(v) for v in sent.fields["size"].split("x"))
    assert width % 16 == 0 and height % 16 == 0
    assert width / height == pytest.approx(16 / 9, abs=0.02)
    assert "input_fidelity" not in sent.fields  # gpt-image-2 rejects it
    assert "background" not in sent.fields

    assert looks_inverted(mean_colour(answer.body, (0.05, 0.1, 0.45, 0.9)), PHOTO_TINT)
    right = mean_colour(answer.body, (0.55, 0.1, 0.95, 0.9))
    assert looks_inverted(right, REFERENCE_TINT if kind != "prompt" else PHOTO_TINT)

    job = await booth.job(answer)
    notes = job["provider_notes"]
    assert notes["model"] == "gpt-image-2" and notes["attempts"] == 1 and notes["size"] == sent.fields["size"]
    assert notes["usage"]["total_tokens"] == 2556
    # A 16:9 free size of about 1536×1024 pixels: priced as gpt-image-2's 1536x1024 at medium (the table).
    assert job["cost_usd"] == pytest.approx(0.041)
    assert KEY not in str(job)


def slot_costs(stats: dict[str, Any]) -> dict[int, float]:
    return {s["number"]: s["all_time"]["cost_usd"] for s in stats["slots"] if s["provider"] == "openai"}


async def test_statistics_price_each_image_by_its_size_and_quality(booth: Booth, fake: FakeOpenAI) -> None:
    """OpenAI bills gpt-image-2 by quality and size (its image-generation guide: 1024x1024 low $0.006,
    1536x1024 high $0.165); the statistics show each slot's image at its own price, from the price table."""
    await slot(booth, 18, options={"quality": "low", "size": "1024x1024"})
    await slot(booth, 19, options={"quality": "high", "size": "1536x1024"})
    before = slot_costs(await booth.stats())
    for number in (18, 19):
        answer, _ = await post(booth, number)
        assert answer.status == 200, answer.body[:300]
    assert [(r.fields["quality"], r.fields["size"]) for r in fake.received] == [
        ("low", "1024x1024"),
        ("high", "1536x1024"),
    ]
    after = slot_costs(await booth.stats())
    assert after[18] - before.get(18, 0.0) == pytest.approx(0.006)
    assert after[19] - before.get(19, 0.0) == pytest.approx(0.165)
    # A price the operator edits on the settings page is data, not code: the next photo costs it.
    async with booth.api() as client:
        table = '{"gpt-image-2": {"high": {"1536x1024": 0.5}}}'
        assert (await client.put("/api/settings", json={"openai_prices_usd": table})).status_code == 200
    answer, _ = await post(booth, 19)
    assert (await booth.job(answer))["cost_usd"] == pytest.approx(0.5)
    async with booth.api() as client:
        assert (await client.put("/api/settings", json={"openai_prices_usd": None})).status_code == 200


@pytest.mark.parametrize(
    ("width", "height", "size"), [(1200, 800, "1536x1024"), (800, 1200, "1024x1536"), (1000, 1000, "1024x1024")]
)
async def test_fixed_size_models_get_the_orientation_and_high_fidelity(
    booth: Booth, fake: FakeOpenAI, width: int, height: int, size: str
) -> None:
    await slot(booth, 4, "face_swap", options={"model": "gpt-image-1.5", "quality": "high"})
    answer, _ = await post(booth, 4, photo(width, height))
    assert answer.status == 200
    assert fake.last.model == "gpt-image-1.5"
    assert fake.last.fields["size"] == size
    assert fake.last.fields["input_fidelity"] == "high"
    assert fake.last.fields["quality"] == "high"
    assert (await booth.job(answer))["cost_usd"] == pytest.approx(booth.settings.openai_price_high_usd)


async def test_png_slot_asks_for_a_transparent_background(booth: Booth, fake: FakeOpenAI) -> None:
    options = {"output_format": "png", "transparent_background": True, "quality": "low"}
    await slot(booth, 5, output_format="png", options=options)
    answer, _ = await post(booth, 5)
    assert answer.status == 200 and answer.content_type == "image/png"
    assert fake.last.fields["background"] == "transparent" and fake.last.fields["output_format"] == "png"
    assert open_image(answer.body).mode == "RGBA"


async def test_503_then_an_image(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 6)
    fake.push("unavailable")
    answer, _ = await post(booth, 6)
    assert answer.status == 200 and len(fake.received) == 2
    assert (await booth.job(answer))["provider_notes"]["problems"] == ["503"]


async def test_429_with_a_short_retry_after_is_waited_out(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 7)
    fake.push("rate_limited")
    fake.retry_after = "0.5"
    answer, elapsed = await post(booth, 7)
    assert answer.status == 200 and len(fake.received) == 2
    assert elapsed >= 0.5


# --- failures -------------------------------------------------------------------------------------


async def test_429_asking_for_longer_than_the_deadline_answers_429_at_once(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 8)
    fake.default_mode = "rate_limited"
    fake.retry_after = "47"
    answer, elapsed = await post(booth, 8)
    assert answer.status == 429 and error_of(answer) == "rate_limited"
    assert "47" in str(answer.json()["message"])
    assert len(fake.received) == 1
    # answered at once, not after waiting out the deadline (that would be ~2.75 s): the server's own clock
    assert await server_seconds(booth, answer) < DEADLINE - 1.0
    assert elapsed < DEADLINE, f"the booth waited {elapsed:.2f} s"


async def test_moderation_blocked_answers_502_refused(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 9, "face_swap")
    fake.default_mode = "moderation_blocked"
    sent = photo()
    answer, _ = await post(booth, 9, sent)
    assert answer.status == 502 and error_of(answer) == "provider_refused"
    assert len(fake.received) == 1  # a refusal is not retried
    job_id = str(answer.json()["job_id"])
    trash = {p.name: p for p in booth.trash_files()}
    assert trash[f"{job_id}.jpg"].read_bytes() == sent, "this job's original, byte for byte"
    assert json.loads(trash[f"{job_id}.json"].read_text())["error"] == "provider_refused"


async def test_invalid_key_answers_502_auth_and_shows_on_the_tab(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 10)
    fake.push("invalid_key")
    answer, _ = await post(booth, 10)
    assert answer.status == 502 and error_of(answer) == "provider_auth"
    assert "BOOTHGATE_OPENAI_API_KEY" in str(answer.json()["message"])
    assert KEY not in answer.body.decode()
    assert "BOOTHGATE_OPENAI_API_KEY" in str(await openai_tab(booth, "last_error"))
    assert (await post(booth, 10))[0].status == 200
    assert await openai_tab(booth, "last_error") is None


async def test_unknown_model_answers_502_provider_model(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 11, options={"model": "gpt-image-9"})
    answer, _ = await post(booth, 11)
    assert answer.status == 502 and error_of(answer) == "provider_model"
    assert "gpt-image-9" in str(answer.json()["message"]) and "slot" in str(answer.json()["message"])
    await slot(booth, 11, options={"model": ""})
    assert (await post(booth, 11))[0].status == 200


async def test_no_quota_answers_429_billing(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 12)
    fake.push("insufficient_quota")
    answer, _ = await post(booth, 12)
    assert answer.status == 429 and error_of(answer) == "provider_billing"
    assert len(fake.received) == 1
    await post(booth, 12)  # clears the tab's error for the next tests


async def test_endless_503_answers_502_before_the_deadline(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 13)
    fake.default_mode = "unavailable"
    answer, elapsed = await post(booth, 13)
    assert answer.status == 502 and error_of(answer) == "provider_unavailable"
    assert elapsed <= DEADLINE + SLACK and len(fake.received) >= 2


async def test_slow_past_the_deadline_answers_504_in_time(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 14)
    fake.default_mode = "slow"
    fake.slow_seconds = 30
    answer, elapsed = await post(booth, 14)
    assert answer.status == 504 and error_of(answer) == "deadline"
    assert elapsed <= DEADLINE + SLACK
    assert len(fake.received) == 1


async def test_no_image_answers_502(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 15)
    fake.default_mode = "no_image"
    answer, _ = await post(booth, 15)
    assert answer.status == 502 and error_of(answer) == "provider_no_image"


async def test_unreadable_answer_answers_502(booth: Booth, fake: FakeOpenAI) -> None:
    await slot(booth, 16)
    fake.default_mode = "malformed"
    answer, _ = await post(booth, 16)
    assert answer.status == 502 and error_of(answer) == "provider_bad_response", answer.body


async def test_statistics_count_the_tab_and_its_cost(booth: Booth, fake: FakeOpenAI) -> None:
    before = (await booth.stats())["providers"]["openai"]["all_time"]
    await slot(booth, 17, options={"quality": "low"})
    assert (await post(booth, 17))[0].status == 200
    after = (await booth.stats())["providers"]["openai"]["all_time"]
    assert after["succeeded"] == before["succeeded"] + 1
    # match_photo on gpt-image-2: a free size of about 1536×1024 pixels, priced as 1536x1024 at low.
    assert after["cost_usd"] == pytest.approx(before["cost_usd"] + 0.005, abs=1e-4)


# --- model list and check (what the live-providers endpoints call) ---------------------------------


async def test_list_models_and_check(fake_server: tuple[FakeOpenAI, str], tmp_path: Path) -> None:
    fake, url = fake_server
    fake.reset()
    async with httpx.AsyncClient() as http:
        settings = booth_settings(tmp_path, openai_api_key=KEY, openai_base_url=url)
        provider = OpenAIProvider(ProviderContext(settings, http))
        models = [m.id for m in await provider.list_models() or []]
        assert models[:3] == ["gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2"]  # image models first
        assert set(models) == set(fake.models)
        ok = await provider.check()
        assert ok.ok and "gpt-image-2" in ok.message
        fake.models.remove("gpt-image-2")
        missing = await provider.check()
        assert not missing.ok and "BOOTHGATE_OPENAI_MODEL" in missing.message
        await provider.aclose()

        wrong = OpenAIProvider(
            ProviderContext(booth_settings(tmp_path, openai_api_key="sk-wrong", openai_base_url=url), http)
        )
        verdict = await wrong.check()
        assert not verdict.ok and "BOOTHGATE_OPENAI_API_KEY" in verdict.message and "sk-wrong" not in verdict.message
        await wrong.aclose()
    assert fake.received == []  # nothing paid: no edit was sent


async def openai_tab(booth: Booth, field: str) -> Any:
    async with booth.api() as client:
        providers = (await client.get("/api/providers")).json()
    [tab] = [p for p in providers if p["name"] == "openai"]
    return tab[field]
