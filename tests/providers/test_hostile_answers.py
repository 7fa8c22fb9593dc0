"""Provider answers are untrusted input (issue 31, classes 1, 4, 5): the real Gemini tab, the real
google-genai SDK, pointed at a hostile loopback service (tests/fakes/hostile.py).

- malformed answers of many shapes are the provider's failure (502 `provider_bad_response`), and the
  slot's fallback serves the photo;
- a redirect to another origin is never followed with the photo and the key;
- a compressed bomb is refused by its inflated size, not inflated in full.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothgate.web.app import create_app
from tests.conftest import Booth, ScriptedProvider, booth_settings, make_jpeg
from tests.fakes.hostile import Elsewhere, Hostile
from tests.fakes.server import serve

KEY = "hostile-test-gemini-key"
DEADLINE = 6.0
MALFORMED = (
    "bad_base64",
    "number_as_text",
    "parts_not_list",
    "parts_of_numbers",
    "candidates_not_list",
    "bad_enum",
    "deep",
)

_seed = iter(range(500, 100_000))


def photo() -> bytes:
    return make_jpeg(640, 480, seed=next(_seed))


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[Hostile, Elsewhere, str]]:
    hostile, elsewhere = Hostile(), Elsewhere()
    with serve(hostile.app) as url, serve(elsewhere.app) as other:
        hostile.redirect_to = other
        yield hostile, elsewhere, url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, services: tuple[Hostile, Elsewhere, str]) -> Iterator[Booth]:
    tmp: Path = tmp_path_factory.mktemp("hostile")
    settings = booth_settings(
        tmp, deadline_seconds=DEADLINE, gemini_api_key=KEY, gemini_base_url=services[2], fallback_default_seconds=2.0
    )
    app = create_app(settings, {"openai": ScriptedProvider})  # the real Gemini tab; a scripted fallback
    with serve(app) as url:
        yield Booth(url, settings, app, calls=ScriptedProvider.calls)


@pytest.fixture
def hostile(services: tuple[Hostile, Elsewhere, str]) -> Hostile:
    services[0].received.clear()
    services[1].received.clear()
    services[0].mode = "image"
    return services[0]


async def slots(booth: Booth, number: int, fallback: bool) -> None:
    await booth.configure("openai", number, kind="prompt", prompt="x", options={"mode": "invert"})
    extra: dict[str, Any] = {"fallback": f"openai/{number}"} if fallback else {}
    await booth.configure("gemini", number, kind="prompt", prompt="as a pirate", **extra)


@pytest.mark.parametrize("mode", MALFORMED)
async def test_a_malformed_answer_is_the_providers_failure_and_the_fallback_serves(
    server: Booth, hostile: Hostile, mode: str
) -> None:
    number = MALFORMED.index(mode) + 1
    await slots(server, number, fallback=False)
    await slots(server, number + 10, fallback=True)
    hostile.mode = mode

    alone = await server.post("gemini", number, photo())
    assert alone.status == 502, alone.body[:300]
    assert alone.json()["error"] == "provider_bad_response"

    served = await server.post("gemini", number + 10, photo())
    assert served.status == 200, served.body[:300]
    assert served.headers.get("content-type", "").startswith("image/")


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_a_redirect_to_another_origin_is_refused_and_carries_nothing(
    server: Booth, hostile: Hostile, services: tuple[Hostile, Elsewhere, str], status: int
) -> None:
    number = {302: 18, 307: 19, 308: 20}[status]
    await slots(server, number, fallback=False)
    hostile.mode = f"redirect_{status}"

    answer = await server.post("gemini", number, photo())

    assert answer.status == 502, answer.body[:300]
    assert hostile.received, "the provider was called"
    elsewhere = services[1]
    assert elsewhere.received == [], "nothing may reach the other origin"


async def test_a_gzip_bomb_is_refused_by_its_inflated_size_without_holding_it(server: Booth, hostile: Hostile) -> None:
    """~300 MB of JSON padding in ~300 kB of gzip: refused past the answer limit (40 MB), never inflated in
    full; Python's peak allocation during the answer stays within 100 MB, and another slot is served."""
    import asyncio
    import tracemalloc

    await slots(server, 8, fallback=False)
    await server.configure("openai", 9, kind="prompt", prompt="x", options={"mode": "invert"})
    hostile.inflated_bytes = 300 << 20
    hostile.bomb()  # built before measuring
    hostile.mode = "gzip_bomb"
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        idle, _ = tracemalloc.get_traced_memory()
        bombed, other = await asyncio.gather(server.post("gemini", 8, photo()), server.post("openai", 9, photo()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bombed.status == 502, bombed.body[:300]
    assert bombed.json()["error"] == "provider_answer_too_large"
    assert other.status == 200
    assert peak - idle < 100 << 20, f"peak {(peak - idle) >> 20} MB over idle"
