"""Several API keys per provider (issue 28), through the real google-genai SDK against the loopback fake.

Three Gemini keys, one answering 429 (retryDelay and Retry-After 30 s): twelve photos in a row all succeed on
the other two and none waits; a key answering 401 is flagged by its masked name and no later photo uses it;
the connection check tries every key. The fake records which key every request carried.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from boothgate import redaction
from boothgate.deadline import Deadline
from boothgate.providers.base import Kind, ProviderContext, ProviderRequest
from boothgate.providers.gemini import GeminiProvider
from boothgate.providers.gemini_options import GeminiOptions
from boothgate.providers.keys import KeyPools, key_list, mask
from boothgate.settings import get_settings
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, prepared

KEY_A = "gemini-key-aaaa-0000000000000001"
KEY_B = "gemini-key-bbbb-0000000000000002"
KEY_C = "gemini-key-cccc-0000000000000003"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=KEY_A)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(fake_server: tuple[GeminiFake, str]) -> GeminiFake:
    fake_server[0].reset()
    fake_server[0].more_keys = {KEY_B, KEY_C}
    return fake_server[0]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def provider(http: httpx.AsyncClient, url: str, pools: KeyPools | None = None, **values: Any) -> GeminiProvider:
    settings = get_settings(gemini_api_key=KEY_A, gemini_api_keys=f"{KEY_B}, {KEY_C}", gemini_base_url=url, **values)
    return GeminiProvider(ProviderContext(settings, http, keys=pools or KeyPools()))


def job(deadline: float = 5.0) -> ProviderRequest:
    return ProviderRequest(
        job_id="job",
        kind=Kind.face_swap,
        photo=prepared(320, 240, PHOTO_TINT),
        reference=prepared(200, 300, REFERENCE_TINT, fmt="PNG"),
        prompt="as astronauts",
        options=GeminiOptions(),
        deadline=Deadline.after(deadline),
    )


def test_keys_come_from_the_list_and_the_single_setting_masked() -> None:
    assert key_list(SecretStr(f" {KEY_B},,{KEY_C}, {KEY_B}"), SecretStr(KEY_A)) == [KEY_B, KEY_C, KEY_A]
    assert key_list(None, SecretStr(KEY_A)) == [KEY_A]  # the single-key setting keeps working
    assert mask(KEY_A) == "gemi…0001" and KEY_A not in mask(KEY_A)
    assert mask("short") == "…"


async def test_a_rate_limited_key_rests_while_the_other_two_carry_twelve_photos(
    fake: GeminiFake, fake_server: tuple[GeminiFake, str], http: httpx.AsyncClient
) -> None:
    fake.retry_delay = "30s"
    fake.key_modes[KEY_B] = "rate_limited_for_key"
    gemini = provider(http, fake_server[1])
    for _ in range(12):
        request = job()
        result = await gemini.run(request)
        assert result.data
        # None waited: the job did not sleep for the 30 s, or even for a backoff.
        assert request.deadline.remaining() > 2.0 and request.notes["attempts"] <= 2
    by_key = Counter(r.api_key for r in fake.received)
    assert by_key[KEY_B] == 1  # asked once, then resting for its 30 s
    assert by_key[KEY_A] + by_key[KEY_C] == 12 and min(by_key[KEY_A], by_key[KEY_C]) >= 5  # spread over both
    keys = {k["key"]: k for k in gemini.describe()["keys"]}
    assert keys[mask(KEY_B)]["resting_seconds"] > 25 and keys[mask(KEY_B)]["failures"] == 1
    assert keys[mask(KEY_A)]["failures"] == 0 and keys[mask(KEY_A)]["calls"] >= 5
    described = str(gemini.describe())
    assert KEY_A not in described and KEY_B not in described and KEY_C not in described


async def test_a_refused_key_is_flagged_by_its_masked_name_and_never_used_again(
    fake: GeminiFake, fake_server: tuple[GeminiFake, str], http: httpx.AsyncClient
) -> None:
    fake.key_modes[KEY_C] = "unauthenticated"  # 401
    pools = KeyPools()
    gemini = provider(http, fake_server[1], pools)
    notes = []
    for _ in range(6):
        request = job()
        await gemini.run(request)
        notes.append(request.notes)
    assert [r.api_key for r in fake.received].count(KEY_C) == 1
    [flagged] = [k for k in gemini.describe()["keys"] if k["flagged"]]
    assert flagged["key"] == mask(KEY_C) and "401" in flagged["flagged"]
    assert KEY_C not in str(notes) and mask(KEY_C) in str(notes)  # the job notes name it masked
    # The same pools after a settings change (a new provider instance): still out.
    again = provider(http, fake_server[1], pools)
    await again.run(job())
    assert [r.api_key for r in fake.received].count(KEY_C) == 1


async def test_all_keys_resting_is_a_rate_limit_at_once(
    fake: GeminiFake, fake_server: tuple[GeminiFake, str], http: httpx.AsyncClient
) -> None:
    fake.retry_delay = "30s"
    for key in (KEY_A, KEY_B, KEY_C):
        fake.key_modes[key] = "rate_limited_for_key"
    gemini = provider(http, fake_server[1])
    from boothgate.errors import RateLimited

    started = time.monotonic()
    with pytest.raises(RateLimited):
        await gemini.run(job(deadline=4.0))
    assert time.monotonic() - started < 3.5  # no 30 s wait that cannot fit
    assert len(fake.received) == 3  # each key asked once


async def test_the_check_tries_every_key_and_names_them_masked(
    fake: GeminiFake, fake_server: tuple[GeminiFake, str], http: httpx.AsyncClient
) -> None:
    fake.key_modes[KEY_B] = "unauthenticated"
    gemini = provider(http, fake_server[1])
    verdict = await gemini.check()
    assert not verdict.ok
    assert "3 keys checked" in verdict.message
    assert f"{mask(KEY_A)}: key accepted" in verdict.message and mask(KEY_B) in verdict.message
    assert KEY_B not in verdict.message
    assert [k["key"] for k in gemini.describe()["keys"] if k["flagged"]] == [mask(KEY_B)]


def test_each_key_of_a_list_is_redacted_from_logs() -> None:
    settings = get_settings(gemini_api_keys=f"{KEY_B},{KEY_C}")
    redaction.protect_settings(settings)
    assert KEY_C not in redaction.REDACTOR.scrub(f"x-goog-api-key: {KEY_C}")


async def test_fal_photos_skip_a_refused_key_and_flag_it(http: httpx.AsyncClient, tmp_path: Any) -> None:
    from boothgate.providers.fal import FalOptions, FalProvider
    from tests.fakes.fal import FakeFal

    good, bad = "good-fal:secret-0123456789abcd01", "bad-fal:secret-0123456789abcd02"
    fake = FakeFal(api_key=good)
    with serve(fake.app) as url:
        settings = get_settings(fal_api_key=bad, fal_api_keys=good, fal_queue_url=url, fal_poll_interval_seconds=0.05)
        fal = FalProvider(ProviderContext(settings, http, keys=KeyPools()))
        for _ in range(4):
            request = job()
            request.options = FalOptions()
            assert (await fal.run(request)).data
        keys = {k["key"]: k for k in fal.describe()["keys"]}
    assert keys[mask(bad)]["flagged"] and keys[mask(bad)]["calls"] == 1
    assert keys[mask(good)]["calls"] == 4 and keys[mask(good)]["failures"] == 0
    assert all(s.authorization == f"Key {good}" for s in fake.submits[1:])
