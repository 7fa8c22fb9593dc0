"""Offline marks and model lists every node sees (issue 27): two real `boothgate serve` processes on one real
PostgreSQL, the real Gemini tab against its loopback fake on one fixed port, which the test takes down
(nothing listens: connections are refused, as with a dead service) and brings back.

- Node A's booths find Gemini unreachable until A's breaker opens; node B, which never failed itself, then
  skips Gemini at once (its booth answered by the fallback, the fake asked nothing) and its /health says
  offline; after the open period a reached run on B closes the breaker on A too (one failure on A does not
  open it again, where A's own trial would have).
- The nodes start together and the service is asked for one list (one node reads, the other takes it);
  node A refreshes its model list; node B's API shows the new list (and answers "is the current model
  offered?" from it) while the fake is asked for no second list.

And a database that never answers leaves a node deciding alone: its own count opens its breaker, no
decision waits, and the shared read gives up within its bound; a stored list is taken only by a node whose
key and base URL it was read with (the row holds their hash, never the key)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothgate.cli.booth_client import BoothAnswer
from boothgate.operator.model_lists import ModelLists, _fingerprint
from boothgate.providers.base import ProviderContext
from boothgate.providers.registry import Registry
from boothgate.run.offline import Breaker
from boothgate.settings import get_settings
from boothgate.storage import breakers
from boothgate.storage.breakers import SharedBreakers
from boothgate.storage.changes import Changes
from boothgate.storage.db import Database
from boothgate.storage.shared_lists import TOPIC, SharedLists
from tests.conftest import ADMIN, UPLOAD_PASSWORD, make_jpeg, post_photo_async
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import free_port, serve
from tests.nodes.cluster import GEMINI_KEY, Node, configure_slot, ready, start_node
from tests.postgres_support import PostgresServer
from tests.waits import eventually

pytestmark = pytest.mark.slow
OPEN_SECONDS = 8.0  # long enough for B's booth while A's mark holds; the test waits out the rest
NEW_MODEL = "gemini-4-image-preview"


class Service:
    """The Gemini fake on one port that is up or down (down: nothing listens, connections are refused)."""

    def __init__(self) -> None:
        self.fake = GeminiFake(api_key=GEMINI_KEY)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._running: contextlib.AbstractContextManager[str] | None = None

    def up(self) -> None:
        self._running = serve(self.fake.app, port=self.port)
        self._running.__enter__()

    def down(self) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)
            self._running = None


@dataclass
class Cluster:
    service: Service
    a: Node
    b: Node
    database: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[Cluster]:
    service = Service()
    service.up()
    database = postgres_server.fresh_database()
    root = tmp_path_factory.mktemp("offline")
    settings = {"breaker_failures": 2, "breaker_window_seconds": 120, "breaker_open_seconds": OPEN_SECONDS}
    a = start_node("a", root, service.url, database, **settings)
    b = start_node("b", root, service.url, database, **settings)
    try:
        asyncio.run(_prepare(a, b))
        yield Cluster(service, a, b, database)
    finally:
        a.stop()
        b.stop()
        service.down()


async def _prepare(a: Node, b: Node) -> None:
    await ready(a, b)
    async with httpx.AsyncClient(base_url=a.base, auth=ADMIN, timeout=30) as client:
        body = {"enabled": True, "kind": "prompt", "prompt": "noir", "options": {"style": "noir"}}
        assert (await client.put("/api/slots/local/1", json=body)).status_code == 200
    await configure_slot(a.base, fallback="local/1")  # slots are shared: B has them too


async def _booth(node: Node, seed: int) -> tuple[BoothAnswer, dict[str, Any]]:
    answer = await post_photo_async(f"{node.base}/booth/gemini/1", make_jpeg(seed=seed), UPLOAD_PASSWORD)
    assert answer.status == 200, answer.body[:300]
    async with httpx.AsyncClient(base_url=node.base, auth=ADMIN, timeout=10) as client:
        response = await client.get(f"/api/jobs/{answer.headers['x-job-id']}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return answer, job


async def _gemini_health(node: Node) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{node.base}/health")
    health: dict[str, Any] = response.json()["providers"]["gemini"]
    return health


async def _models(node: Node, refresh: bool = False) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=node.base, auth=ADMIN, timeout=30) as client:
        response = await client.get("/api/providers/gemini/models", params={"refresh": 1} if refresh else {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_refresh_on_one_node_is_the_list_of_every_node(cluster: Cluster) -> None:
    fake, a, b = cluster.service.fake, cluster.a, cluster.b

    # The two nodes started together: one read the list, the other took it (one read's pages in all).
    async def both_listed() -> bool:
        return await _listed(a) and await _listed(b)

    await eventually(both_listed, "both nodes holding a list", timeout=30, step=0.2)
    at_start = fake.list_calls
    before = await _models(b)  # the list B holds since its start
    assert NEW_MODEL not in [m["id"] for m in before["models"]] and before["current_offered"] is True
    removed = fake.catalogue.pop("gemini-nano-banana-2.1")  # the default model is gone, a new one came
    fake.catalogue[NEW_MODEL] = "Nano Banana 4"
    try:
        calls = fake.list_calls
        refreshed = await _models(a, refresh=True)
        assert NEW_MODEL in [m["id"] for m in refreshed["models"]] and refreshed["current_offered"] is False
        asked = fake.list_calls
        assert asked > calls  # A read it from the service (a list comes in pages)
        assert at_start == asked - calls, "each node asked the service at start"

        async def b_has_it() -> dict[str, Any] | None:
            body = await _models(b)
            return body if NEW_MODEL in [m["id"] for m in body["models"]] else None

        shown = await eventually(b_has_it, "node B showing the list node A read", timeout=10, step=0.1)
        assert shown["current_offered"] is False  # "is this model offered?" answered from A's list
        assert fake.list_calls == asked  # B never asked the service
    finally:
        fake.catalogue.pop(NEW_MODEL, None)
        fake.catalogue["gemini-nano-banana-2.1"] = removed


async def _listed(node: Node) -> bool:
    """The node holds a Gemini list (its settings page offers it; the page never reads one itself)."""
    async with httpx.AsyncClient(base_url=node.base, auth=ADMIN, timeout=30) as client:
        response = await client.get("/settings")
    return 'id="models-gemini"' in response.text


async def test_a_tab_one_node_finds_unreachable_is_skipped_by_the_others(cluster: Cluster) -> None:
    service, a, b = cluster.service, cluster.a, cluster.b
    service.down()
    try:
        for seed in (1, 2):  # A pays the breaker's two unreachable runs; its booths get the fallback
            _, job = await _booth(a, seed)
            assert (job["served_by"], job["fallback_reason"]) == ("local/1", "provider_unreachable"), job
        assert (await _gemini_health(a))["offline"] is True
    finally:
        service.up()  # back at once: only the mark keeps B's booths away from it now
    asked = len(service.fake.received)

    b_health = await eventually(lambda: _offline(b), "node B seeing the tab offline", timeout=5, step=0.05)
    assert b_health["failure"] == "ConnectError" and 0 < b_health["retry_in_seconds"] <= OPEN_SECONDS
    started = time.monotonic()
    _, job = await _booth(b, 3)
    assert (job["served_by"], job["fallback_reason"]) == ("local/1", "offline"), job  # skipped, not tried
    assert len(service.fake.received) == asked  # the fake heard nothing from B
    assert time.monotonic() - started < 20  # no timeout was paid (the deadline is 40 s)

    # After the open period B's next run is the trial: it reaches Gemini and closes the breaker everywhere.
    await eventually(lambda: _offline(b, False), "the open period's end", timeout=OPEN_SECONDS + 10, step=0.2)
    _, job = await _booth(b, 4)
    assert job["served_by"] == "gemini/1" and job["fallback_reason"] is None, job
    assert len(service.fake.received) == asked + 1

    # A was closed by B's run: one unreachable run there counts one of two again. Had A's breaker been left
    # to its own trial, that one failure would have opened it at once.
    await eventually(lambda: _mark_cleared(cluster.database), "B's close in the database", timeout=5, step=0.05)
    service.down()
    try:
        _, job = await _booth(a, 5)
        assert job["fallback_reason"] == "provider_unreachable", job
        assert (await _gemini_health(a))["offline"] is False
        assert (await _gemini_health(b))["offline"] is False
    finally:
        service.up()


async def _offline(node: Node, offline: bool = True) -> dict[str, Any] | None:
    health = await _gemini_health(node)
    return health if health["offline"] is offline else None


async def _mark_cleared(url: str) -> bool:
    """B's reached run cleared Gemini's mark (A is told when that commits and reads it in a few ms, while
    its next booth is still being uploaded and prepared)."""
    db = Database(url)
    try:
        async with db.read() as session:
            row = (await session.execute(text("SELECT open_until FROM shared_breakers WHERE tab = 'gemini'"))).one()
        return row[0] is None
    finally:
        await db.dispose()


async def test_a_database_that_does_not_answer_leaves_the_node_its_own_breaker(
    silent_database: str, tmp_path: Path
) -> None:
    db = Database(silent_database)
    shared = SharedBreakers.on(db, Changes(db, "n1"), wait_seconds=0.2)
    assert shared is not None
    settings = get_settings(breaker_failures=2, breaker_window_seconds=60, breaker_open_seconds=30)
    breaker = Breaker(lambda: settings)
    breaker.share(shared)
    try:
        started = time.monotonic()
        breaker.unreachable("gemini", "ConnectError")
        breaker.unreachable("gemini", "ConnectError")  # opens here and starts the mark for the others
        assert not breaker.allows("gemini") and breaker.offline("gemini")  # decided in memory, at once
        assert time.monotonic() - started < 0.5
        started = time.monotonic()
        await breaker.sync()  # the marks of the others: not back in time, nothing changes
        assert time.monotonic() - started < 0.2 + 0.5
        assert breaker.offline("gemini") and breaker.describe("gemini")["failure"] == "ConnectError"
        # The hanging mark and read hold at most MAX_IN_FLIGHT connections: more are not even started.
        for _ in range(3):
            breaker.reached("gemini")
            breaker.unreachable("gemini")
            breaker.unreachable("gemini")
        assert shared.missed >= 1 and len(shared.side.running) <= breakers.MAX_IN_FLIGHT
        sqlite = Database(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
        assert SharedBreakers.on(sqlite, Changes(sqlite, "n1")) is None  # one node: its own marks, as before
        await sqlite.dispose()
    finally:
        for task in list(shared.side.running):
            task.cancel()
        await db.dispose()


async def test_a_stored_list_is_taken_only_with_the_key_and_address_it_was_read_with(
    postgres_server: PostgresServer,
) -> None:
    db = Database(postgres_server.fresh_database())
    await db.migrate()
    fake = GeminiFake(api_key="key-mine")
    registries: list[Registry] = []
    listeners: list[Changes] = []

    def lists_for(key: str, url: str, node: str) -> ModelLists:
        settings = get_settings(gemini_api_key=key, gemini_base_url=url)
        registries.append(Registry(ProviderContext(settings, http)))
        changes = Changes(db, node)
        listeners.append(changes)
        lists = ModelLists(registries[-1], SharedLists.on(db, changes))
        changes.on(TOPIC, lists.sync, at_start=True)
        return lists

    with serve(fake.app) as url:
        async with httpx.AsyncClient() as http:
            try:
                # Two nodes with one key and address start at the same moment: one asks, the other takes it.
                one, two = lists_for("key-mine", url, "n1"), lists_for("key-mine", url, "n2")
                for changes in listeners:
                    changes.start()
                await eventually(lambda: all(c.listening.is_set() for c in listeners), "both listening")
                one.start()
                two.start()
                await eventually(lambda: one.get("gemini") and two.get("gemini"), "both lists", timeout=30)
                pages = fake.list_calls
                await one.refresh("gemini")  # what one read costs
                assert pages == fake.list_calls - pages, "both nodes asked the service"
                assert one.shared is not None
                await eventually(lambda: not one.shared.side.running, "the refreshed list stored")  # type: ignore[union-attr]

                # A list read with another key is not taken by these nodes; a node with that key takes it.
                other = lists_for("key-other", url, "n3")
                gemini = other.registry.get("gemini")
                assert gemini is not None
                shared = SharedLists(db, listeners[0], wait_seconds=5)
                shared.store("gemini", _fingerprint(gemini), [{"id": "gemini-for-other-key", "label": "Other"}])
                await eventually(lambda: not shared.side.running, "the list stored")
                await one.sync()
                listing = one.get("gemini")
                assert listing is not None and "gemini-for-other-key" not in listing.ids()
                assert one.offered("gemini", "gemini-for-other-key") is False
                await other.sync()
                listing = other.get("gemini")
                assert listing is not None and listing.ids() == ["gemini-for-other-key"]
                assert other.offered("gemini", "gemini-for-other-key") is True

                async with db.read() as session:  # the row holds a hash, never the key
                    row = (await session.execute(text("SELECT * FROM shared_model_lists WHERE tab = 'gemini'"))).one()
                assert "key-other" not in repr(tuple(row)) and len(row.fingerprint) == 64
            finally:
                for lists in (one, two):
                    await lists.aclose()
                for changes in listeners:
                    await changes.aclose()
                for registry in registries:
                    await registry.aclose()
                await db.dispose()
