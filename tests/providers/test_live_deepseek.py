"""DeepSeek's live model list (`GET /models` through the openai SDK) and its connection check, against the
loopback fake: one answer per failure class."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from boothgate.providers.base import ProviderContext
from boothgate.providers.deepseek import DeepSeekProvider
from boothgate.settings import get_settings
from tests.fakes.deepseek import API_KEY, FakeDeepSeek, running
from tests.fakes.server import free_port


@pytest.fixture
def fake() -> Iterator[tuple[FakeDeepSeek, str]]:
    with running() as pair:
        yield pair


async def provider(http: httpx.AsyncClient, url: str, **settings: object) -> DeepSeekProvider:
    values: dict[str, object] = {"deepseek_api_key": API_KEY, "deepseek_base_url": url}
    values.update(settings)
    return DeepSeekProvider(ProviderContext(get_settings(**values), http))


async def test_model_list_and_check_classes(fake: tuple[FakeDeepSeek, str]) -> None:
    server, url = fake
    async with httpx.AsyncClient() as http:
        good = await provider(http, url)
        models = await good.list_models()
        assert [m.id for m in models or []] == ["deepseek-flash", "deepseek-v4-pro"]
        ok = await good.check()
        assert ok.ok and "deepseek-flash" in ok.message

        no_key = await (await provider(http, url, deepseek_api_key=None)).check()
        refused = await (await provider(http, url, deepseek_api_key="sk-wrong")).check()
        retired = await (await provider(http, url, deepseek_model="deepseek-chat")).check()
        unreachable = await (await provider(http, f"http://127.0.0.1:{free_port()}")).check()
        server.balance_available = False
        broke = await (await provider(http, url)).check()
        for closing in (good,):
            await closing.aclose()
    assert no_key.message.startswith("No API key")
    assert refused.message.startswith("Key refused") and "sk-wrong" not in refused.message
    assert "does not offer the model 'deepseek-chat'" in retired.message
    assert unreachable.message.startswith("Unreachable")
    assert broke.message.startswith("No billing")
    assert not any(v.ok for v in (no_key, refused, retired, unreachable, broke))
    assert not server.received  # no chat completion was paid for
