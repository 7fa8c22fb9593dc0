"""The OpenAI and fal.ai providers called directly (no booth): a service that cannot be reached is tried
again while time remains and then reported as unavailable before the deadline, and fal's key never goes
to an address outside the queue's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from boothgate.deadline import Deadline
from boothgate.errors import BoothError
from boothgate.providers.base import Kind, ProviderContext, ProviderRequest
from boothgate.providers.fal import FalOptions, FalProvider
from boothgate.providers.openai import OpenAIOptions, OpenAIProvider
from tests.conftest import booth_settings
from tests.fakes.fal import FakeFal
from tests.fakes.server import free_port, serve
from tests.gemini_support import PHOTO_TINT, prepared

KEY = "test-key-0123456789"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def request(options: object, seconds: float = 2.5) -> ProviderRequest:
    return ProviderRequest(
        job_id="job-1",
        kind=Kind.prompt,
        photo=prepared(600, 400, PHOTO_TINT),
        reference=None,
        prompt="as pirates",
        options=options,  # type: ignore[arg-type]
        deadline=Deadline.after(seconds),
    )


async def test_openai_unreachable_is_retried_then_unavailable_before_the_deadline(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    provider = OpenAIProvider(
        ProviderContext(booth_settings(tmp_path, openai_api_key=KEY, openai_base_url=closed), http)
    )
    job = request(OpenAIOptions())
    with pytest.raises(BoothError) as failed:
        await provider.run(job)
    assert time.monotonic() < job.deadline.at + 0.5  # gave up for want of time, not after it
    assert failed.value.status == 502 and failed.value.code == "provider_unavailable"
    assert job.notes["attempts"] >= 2
    assert all(problem.startswith("connection") for problem in job.notes["problems"])
    await provider.aclose()


async def test_fal_unreachable_is_retried_then_unavailable_before_the_deadline(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    provider = FalProvider(ProviderContext(booth_settings(tmp_path, fal_api_key=KEY, fal_queue_url=closed), http))
    job = request(FalOptions())
    with pytest.raises(BoothError) as failed:
        await provider.run(job)
    assert time.monotonic() < job.deadline.at + 0.5  # gave up for want of time, not after it
    assert failed.value.status == 502 and failed.value.code == "provider_unavailable"
    assert job.notes["attempts"] >= 2


async def test_fal_key_is_not_sent_to_status_links_on_another_host(http: httpx.AsyncClient, tmp_path: Path) -> None:
    fake = FakeFal(api_key=KEY)
    elsewhere = FakeFal(api_key=KEY)
    with serve(fake.app) as url, serve(elsewhere.app) as other:
        fake.url_base = other.replace("127.0.0.1", "localhost")  # same machine, another origin
        settings = booth_settings(tmp_path, fal_api_key=KEY, fal_queue_url=url, fal_poll_interval_seconds=0.1)
        provider = FalProvider(ProviderContext(settings, http))
        with pytest.raises(BoothError) as failed:
            await provider.run(request(FalOptions()))
    assert failed.value.code == "provider_bad_response"
    assert len(fake.submits) == 1
    assert elsewhere.polls == [] and elsewhere.cancels == [] and elsewhere.submits == []
