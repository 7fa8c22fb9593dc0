"""Several API keys for Turbotext, DeepSeek, OpenAI and fal (issue 28), through the real clients against the
loopback fakes: calls are spread over the keys, a rate-limited key rests while the others carry on, a refused
key is flagged by its masked name and not used again, and every provider's check tries every key.

Turbotext's fake keeps a queued job to the key that queued it (another key does not find the queue), so a
photo that polls with a different key than it queued with fails here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.deadline import Deadline
from boothgate.providers.base import Kind, ProviderContext, ProviderRequest
from boothgate.providers.deepseek import DeepSeekProvider
from boothgate.providers.fal import FalProvider
from boothgate.providers.keys import KeyPools, mask
from boothgate.providers.openai import OpenAIOptions, OpenAIProvider
from boothgate.providers.turbotext import TurbotextProvider
from boothgate.settings import get_settings
from tests.conftest import make_jpeg
from tests.fakes.deepseek import API_KEY as DEEPSEEK_KEY
from tests.fakes.deepseek import running
from tests.fakes.fal import FakeFal
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import serve
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, prepared
from tests.providers.test_deepseek import RecordingRenderer, Start, start  # noqa: F401  (the fixture)
from tests.providers.test_turbotext_provider import Rig, rig, servers  # noqa: F401  (fixtures)

TT_A = "tt-key-aaaa-000000000001"
TT_B = "tt-key-bbbb-000000000002"
TT_C = "tt-key-cccc-000000000003"
DS_B = "sk-fake-deepseek-bbbbbbbbbb02"
GOOD, BAD = "key-good-0123456789abcd01", "key-bad-0123456789abcd002"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def turbotext(on: Rig, pools: KeyPools, **settings: Any) -> TurbotextProvider:
    values: dict[str, Any] = {
        "turbotext_api_key": TT_A,
        "turbotext_api_keys": f"{TT_B},{TT_C}",
        "turbotext_base_url": f"{on.fake_url}/api_ai",
        "turbotext_poll_interval_seconds": 0.05,
        "public_base_url": on.ours_url,
    }
    values.update(settings)
    provider = TurbotextProvider(ProviderContext(get_settings(**values), on.http, keys=pools))
    on.ours.registry.providers["turbotext"] = provider
    return provider


async def test_turbotext_spreads_photos_and_a_rate_limited_key_rests(rig: Rig) -> None:  # noqa: F811
    rig.fake.api_key, rig.fake.more_keys = TT_A, {TT_B, TT_C}
    rig.fake.limited_keys = {TT_B}  # 429 with Retry-After: 30
    provider = turbotext(rig, KeyPools())
    for _ in range(6):
        request = rig.request(Kind.background, seconds=5.0)
        result = await provider.run(request)
        assert result.data
        assert request.deadline.remaining() > 3.0  # nobody waited out the 30 s
    creates = Counter(r.key for r in rig.fake.calls("create_queue"))
    assert creates[TT_B] == 1  # asked once, then resting
    assert creates[TT_A] >= 2 and creates[TT_C] >= 2 and creates[TT_A] + creates[TT_C] == 6
    # Every poll carried the key its job was queued with (the fake refuses other keys' queues).
    assert all(r.key in (TT_A, TT_C) for r in rig.fake.calls("get_result"))
    keys = {k["key"]: k for k in provider.describe()["keys"]}
    assert keys[mask(TT_B)]["resting_seconds"] > 25 and keys[mask(TT_B)]["failures"] == 1
    assert keys[mask(TT_A)]["failures"] == 0
    assert TT_A not in str(provider.describe())


async def test_turbotext_flags_a_refused_key_and_never_queues_with_it_again(rig: Rig) -> None:  # noqa: F811
    rig.fake.api_key, rig.fake.more_keys = TT_A, {TT_B}  # TT_C is refused ("Неверный API ключ", HTTP 200)
    pools = KeyPools()
    notes = []
    for _ in range(4):
        request = rig.request(Kind.face_swap, seconds=5.0)
        await turbotext(rig, pools).run(request)  # a new provider each time: the pools outlive it
        notes.append(request.notes)
    assert [r.key for r in rig.fake.received].count(TT_C) == 1
    [flagged] = [k for k in turbotext(rig, pools).describe()["keys"] if k["flagged"]]
    assert flagged["key"] == mask(TT_C) and "API ключ" in flagged["flagged"]
    assert TT_C not in str(notes) and mask(TT_C) in str(notes)


async def test_turbotext_check_tries_every_key(rig: Rig) -> None:  # noqa: F811
    rig.fake.api_key, rig.fake.more_keys = TT_A, {TT_C}
    pools = KeyPools()
    verdict = await turbotext(rig, pools).check()
    assert not verdict.ok and verdict.message.startswith("3 keys checked.")
    assert f"{mask(TT_A)}: Key accepted" in verdict.message and f"{mask(TT_C)}: Key accepted" in verdict.message
    assert f"{mask(TT_B)}: Key refused" in verdict.message and TT_B not in verdict.message
    assert [k["key"] for k in turbotext(rig, pools).describe()["keys"] if k["flagged"]] == [mask(TT_B)]
    # The key fixed on the service's side: the next check puts it back in.
    rig.fake.more_keys.add(TT_B)
    again = await turbotext(rig, pools).check()
    assert again.ok, again.message
    assert not [k for k in turbotext(rig, pools).describe()["keys"] if k["flagged"]]


async def test_deepseek_writes_on_another_key_when_one_rests_or_is_refused(start: Start) -> None:  # noqa: F811
    tab = start(deepseek_api_keys=DS_B)
    booth, fake = tab.booth, tab.fake
    fake.more_keys = {DS_B}
    fake.key_modes[DEEPSEEK_KEY] = "rate_limited"  # Retry-After: 30
    await booth.configure("deepseek", 1, kind="prompt", prompt="as astronauts", options={})
    for seed in range(4):
        assert (await booth.post("deepseek", 1, make_jpeg(seed=seed))).status == 200
    by_key = Counter(r.authorization for r in fake.received)
    assert by_key[f"Bearer {DEEPSEEK_KEY}"] == 1  # asked once, then resting for its 30 s
    assert by_key[f"Bearer {DS_B}"] == 4
    # Each photo got DeepSeek's instruction, none fell back to the bare prompt.
    assert [r.instruction for r in RecordingRenderer.renders] == [fake.instruction] * 4

    fake.key_modes[DS_B] = "balance"  # 402: the account is empty, the key is taken out
    fake.key_modes.pop(DEEPSEEK_KEY)
    provider = booth.services.registry.get("deepseek")
    provider.key_pool().unflag_all()  # the first key's 30 s rest is over
    for seed in range(10, 13):
        assert (await booth.post("deepseek", 1, make_jpeg(seed=seed))).status == 200
    later = [r.authorization for r in fake.received[5:]]
    assert later.count(f"Bearer {DS_B}") <= 1 and later.count(f"Bearer {DEEPSEEK_KEY}") == 3


async def test_deepseek_flags_a_key_answering_401_by_its_masked_name(start: Start) -> None:  # noqa: F811
    tab = start(deepseek_api_keys=DS_B)  # listed first: the first photo takes it
    booth, fake = tab.booth, tab.fake
    fake.more_keys = {DS_B}
    fake.key_modes[DS_B] = "invalid_key"  # 401 Authentication Fails
    await booth.configure("deepseek", 1, kind="prompt", prompt="as astronauts", options={})
    for seed in range(20, 24):
        assert (await booth.post("deepseek", 1, make_jpeg(seed=seed))).status == 200
    by_key = Counter(r.authorization for r in fake.received)
    assert by_key[f"Bearer {DS_B}"] == 1 and by_key[f"Bearer {DEEPSEEK_KEY}"] == 4
    assert [r.instruction for r in RecordingRenderer.renders] == [fake.instruction] * 4
    keys = booth.services.registry.get("deepseek").describe()["keys"]
    assert [k["key"] for k in keys if k["flagged"]] == [mask(DS_B)] and DS_B not in str(keys)


async def test_deepseek_check_tries_every_key(http: httpx.AsyncClient) -> None:
    with running() as (fake, url):
        fake.more_keys = {DS_B}
        settings = get_settings(deepseek_api_key=DEEPSEEK_KEY, deepseek_api_keys=f"{DS_B},{BAD}", deepseek_base_url=url)
        provider = DeepSeekProvider(ProviderContext(settings, http, keys=KeyPools()))
        verdict = await provider.check()
        await provider.aclose()
    assert not verdict.ok and verdict.message.startswith("3 keys checked.")
    assert f"{mask(DS_B)}: Key accepted" in verdict.message and f"{mask(DEEPSEEK_KEY)}: Key accepted" in verdict.message
    assert f"{mask(BAD)}: Key refused" in verdict.message and BAD not in verdict.message
    assert [k["key"] for k in provider.describe()["keys"] if k["flagged"]] == [mask(BAD)]


OA_A = "sk-fake-openai-aaaa-000000000001"
OA_B = "sk-fake-openai-bbbb-000000000002"
OA_C = "sk-fake-openai-cccc-000000000003"


def openai_job(deadline: float = 5.0) -> ProviderRequest:
    return ProviderRequest(
        job_id="job",
        kind=Kind.face_swap,
        photo=prepared(320, 240, PHOTO_TINT),
        reference=prepared(200, 300, REFERENCE_TINT, fmt="PNG"),
        prompt="as astronauts",
        options=OpenAIOptions(quality="low"),
        deadline=Deadline.after(deadline),
    )


async def test_openai_rate_limited_key_rests_while_the_other_two_carry_twelve_photos(http: httpx.AsyncClient) -> None:
    """The must-show proven for Gemini, through the real openai SDK: three keys, one answering 429 with
    Retry-After: 30; twelve photos in a row all succeed on the other two and none waits."""
    fake = FakeOpenAI(api_key=OA_A)
    fake.more_keys = {OA_B, OA_C}
    fake.key_modes[OA_B] = "rate_limited"
    fake.retry_after = "30"
    with serve(fake.app) as url:
        settings = get_settings(openai_api_key=OA_A, openai_api_keys=f"{OA_B}, {OA_C}", openai_base_url=f"{url}/v1")
        provider = OpenAIProvider(ProviderContext(settings, http, keys=KeyPools()))
        for _ in range(12):
            request = openai_job()
            assert (await provider.run(request)).data
            # Nobody waited: not the 30 s, not even a backoff (the fake answers at once).
            assert request.deadline.remaining() > 2.0 and request.notes["attempts"] <= 2
            assert OA_B not in str(request.notes)
        await provider.aclose()
    by_key = Counter((r.authorization or "").removeprefix("Bearer ") for r in fake.received)
    assert by_key[OA_B] == 1  # asked once, then resting for its 30 s
    assert by_key[OA_A] + by_key[OA_C] == 12 and min(by_key[OA_A], by_key[OA_C]) >= 5  # spread over both
    keys = {k["key"]: k for k in provider.describe()["keys"]}
    assert keys[mask(OA_B)]["resting_seconds"] > 25 and keys[mask(OA_B)]["failures"] == 1
    assert keys[mask(OA_A)]["failures"] == 0 and keys[mask(OA_C)]["failures"] == 0
    assert not any(k["flagged"] for k in keys.values())


async def test_openai_refused_key_is_flagged_by_its_masked_name_and_never_used_again(http: httpx.AsyncClient) -> None:
    fake = FakeOpenAI(api_key=OA_A)
    fake.more_keys = {OA_B}  # OA_C is not a key OpenAI knows: 401 invalid_api_key
    pools = KeyPools()
    notes = []
    with serve(fake.app) as url:
        settings = get_settings(openai_api_key=OA_A, openai_api_keys=f"{OA_B}, {OA_C}", openai_base_url=f"{url}/v1")
        for _ in range(6):
            provider = OpenAIProvider(ProviderContext(settings, http, keys=pools))  # the pools outlive it
            request = openai_job()
            assert (await provider.run(request)).data
            notes.append(request.notes)
            await provider.aclose()
    sent = [(r.authorization or "").removeprefix("Bearer ") for r in fake.received]
    assert sent.count(OA_C) == 1 and len(sent) == 7
    [flagged] = [k for k in provider.describe()["keys"] if k["flagged"]]
    assert flagged["key"] == mask(OA_C) and "401" in flagged["flagged"]
    assert OA_C not in str(notes) and mask(OA_C) in str(notes)  # the job notes name it masked
    assert OA_C not in str(provider.describe())


async def test_openai_check_tries_every_key(http: httpx.AsyncClient) -> None:
    fake = FakeOpenAI(api_key=GOOD)
    with serve(fake.app) as url:
        settings = get_settings(openai_api_key=GOOD, openai_api_keys=BAD, openai_base_url=f"{url}/v1")
        provider = OpenAIProvider(ProviderContext(settings, http, keys=KeyPools()))
        verdict = await provider.check()
        await provider.aclose()
    assert not verdict.ok and verdict.message.startswith("2 keys checked.")
    assert f"{mask(GOOD)}: OpenAI accepts the key" in verdict.message and mask(BAD) in verdict.message
    assert BAD not in verdict.message
    assert [k["key"] for k in provider.describe()["keys"] if k["flagged"]] == [mask(BAD)]


async def test_fal_check_tries_every_key(http: httpx.AsyncClient, tmp_path: Path) -> None:
    fake = FakeFal(api_key=GOOD)
    with serve(fake.app) as url:
        settings = get_settings(fal_api_key=BAD, fal_api_keys=GOOD, fal_queue_url=url)
        provider = FalProvider(ProviderContext(settings, http, keys=KeyPools()))
        verdict = await provider.check()
    assert not verdict.ok and verdict.message.startswith("2 keys checked.")
    assert f"{mask(GOOD)}: fal.ai accepts the key" in verdict.message
    assert f"{mask(BAD)}: fal.ai refused the key" in verdict.message and BAD not in verdict.message
    assert [k["key"] for k in provider.describe()["keys"] if k["flagged"]] == [mask(BAD)]
