"""Wrong passwords, guesses and strangers' records are counted by every node together (issue 27): two
real `boothgate serve` processes on one real PostgreSQL (started once for this module), a stranger's wrong
passwords alternating between them (as Caddy's least_conn sends them) are answered 429 after the one
allowance, not one allowance per node, and its records stop at one budget; a booth with the right password
is answered 200 on both nodes. The same for wrong admin passwords and for guesses at guest pages and
gallery PINs, each throttle counted under a name of its own. The stranger speaks from 127.0.0.2 (all of
127/8 is loopback), the admin guesser from 127.0.0.3, the page guesser from 127.0.0.4, the PIN guesser
from 127.0.0.5, the booth and the operator from 127.0.0.1.

And the shared count never stands in a booth's way: a database that accepts the connection and never
answers gives no count within the bound, and the node's own count decides."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from boothgate.booth.throttle import Throttle
from boothgate.runtime import SHARE_GUESSES
from boothgate.storage import counts
from boothgate.storage.counts import SharedCounts
from boothgate.storage.db import Database
from tests.conftest import ADMIN, UPLOAD_PASSWORD, make_jpeg, post_photo_async
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve
from tests.nodes.cluster import GEMINI_KEY, Node, configure_slot, ready, start_node
from tests.postgres_support import PostgresServer

pytestmark = pytest.mark.slow
ALLOWANCE = 4  # wrong passwords before an address is locked out
RECORDS = 2  # strangers' records per address and minute
STRANGER = "127.0.0.2"
ADMIN_GUESSER = "127.0.0.3"
PAGE_GUESSER = "127.0.0.4"
PIN_GUESSER = "127.0.0.5"
OPERATOR = "127.0.0.1"


@pytest.fixture(scope="module")
def gemini() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=GEMINI_KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="module")
def two_nodes(
    tmp_path_factory: pytest.TempPathFactory, gemini: tuple[GeminiFake, str], postgres_server: PostgresServer
) -> Iterator[tuple[Node, Node, str]]:
    """Nodes a and b on one fresh PostgreSQL database (and its URL), for every test of this module."""
    _, url = gemini
    database = postgres_server.fresh_database()
    settings = {
        "auth_max_failures": ALLOWANCE,
        "auth_lockout_seconds": 300,
        "unauthenticated_records_per_minute": RECORDS,
        # A loaded 2-core machine may take longer than the default 0.1 s; not waiting is tested below.
        "shared_count_wait_seconds": 5,
        "admin_password_checks_per_second": 100,  # the hashing's global rate is not what is tested here
    }
    root = tmp_path_factory.mktemp("nodes")
    a = start_node("a", root, url, database, **settings)
    b = start_node("b", root, url, database, **settings)
    try:
        yield a, b, database
    finally:
        a.stop()
        b.stop()


def _from(address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), timeout=30)


async def _shared_hits(url: str) -> dict[str, int]:
    """Each key's hits in the shared counts, all minutes together."""
    db = Database(url)
    try:
        async with db.read() as session:
            rows = (await session.execute(text("SELECT key, sum(hits) FROM shared_counts GROUP BY key"))).all()
        return {key: int(hits) for key, hits in rows}
    finally:
        await db.dispose()


async def _stranger_post(node: Node, password: str, address: str = STRANGER) -> int:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        response = await client.post(
            f"{node.base}/booth/gemini/1",
            data={"password": password},
            files={"fileToUpload": ("IMG_0001.JPG", make_jpeg(seed=7), "image/jpeg")},
        )
    return response.status_code


async def _records(url: str) -> int:
    db = Database(url)
    try:
        async with db.read() as session:
            return int((await session.execute(text("SELECT count(*) FROM jobs WHERE source = 'booth'"))).scalar_one())
    finally:
        await db.dispose()


async def _early_in_a_minute(url: str) -> int:
    """Wait (polling the database's clock, at most a minute) until the minute has 20 s left at least, so
    the strangers' budget of one minute is not split by a minute's end; that minute."""
    db = Database(url)
    try:
        until = time.monotonic() + 70
        while True:
            async with db.read() as session:
                row = (await session.execute(text("SELECT extract(epoch FROM now())"))).scalar_one()
            if float(row) % 60 < 40:
                return int(float(row) // 60)
            assert time.monotonic() < until
            await asyncio.sleep(0.5)
    finally:
        await db.dispose()


async def test_wrong_passwords_across_two_nodes_get_one_allowance(two_nodes: tuple[Node, Node, str]) -> None:
    a, b, database = two_nodes
    await ready(a, b)
    await configure_slot(a.base)
    booths = [await post_photo_async(f"{n.base}/booth/gemini/1", make_jpeg(seed=i), UPLOAD_PASSWORD)
              for i, n in enumerate((a, b))]  # fmt: skip
    assert [x.status for x in booths] == [200, 200], [x.body[:200] for x in booths]
    before = await _records(database)

    minute = await _early_in_a_minute(database)
    statuses = [await _stranger_post((a, b)[i % 2], "wrong-guess") for i in range(2 * ALLOWANCE)]
    # One node alone would answer 401 to the first ALLOWANCE; two nodes counting apart, to 2x as many.
    assert statuses == [401] * ALLOWANCE + [429] * ALLOWANCE, statuses
    assert await _early_in_a_minute(database) == minute, "the minute ended during the burst; run again"
    # Locked out on both nodes, even with the right password (as one node does)...
    assert [await _stranger_post(n, UPLOAD_PASSWORD) for n in (a, b)] == [429, 429]
    # ... and the strangers' records stopped at one budget (each node alone would keep RECORDS).
    assert await _records(database) - before == RECORDS

    # A booth with the right password (another address) is answered on both nodes all the while.
    booths = [await post_photo_async(f"{n.base}/booth/gemini/1", make_jpeg(seed=9 + i), UPLOAD_PASSWORD)
              for i, n in enumerate((a, b))]  # fmt: skip
    assert [x.status for x in booths] == [200, 200], [x.body[:200] for x in booths]


async def test_wrong_admin_passwords_across_two_nodes_get_one_allowance(two_nodes: tuple[Node, Node, str]) -> None:
    a, b, database = two_nodes
    await ready(a, b)
    async with _from(ADMIN_GUESSER) as guesser, _from(OPERATOR) as operator:

        async def signs_in(client: httpx.AsyncClient, password: str) -> list[int]:
            return [(await client.get(f"{n.base}/api/sharing", auth=(ADMIN[0], password))).status_code for n in (a, b)]

        # The right password gets in on both nodes and never touches the shared counts.
        assert await signs_in(guesser, ADMIN[1]) == [200, 200]
        assert not [key for key in await _shared_hits(database) if key.startswith("admin:")]

        statuses = [
            (await guesser.get(f"{(a, b)[i % 2].base}/api/sharing", auth=(ADMIN[0], f"guess{i}"))).status_code
            for i in range(2 * ALLOWANCE)
        ]
        # Counting apart, each node would answer 401 to all of them (ALLOWANCE each).
        assert statuses == [401] * ALLOWANCE + [429] * ALLOWANCE, statuses
        # Locked out on both nodes, the right password included (as one node does), for a while...
        locked = [await guesser.get(f"{n.base}/api/sharing", auth=ADMIN) for n in (a, b)]
        assert [r.status_code for r in locked] == [429, 429]
        assert all(int(r.headers["retry-after"]) > 0 for r in locked)
        # ... while the operator at another address signs in on both.
        assert await signs_in(operator, ADMIN[1]) == [200, 200]
    hits = await _shared_hits(database)
    # The ALLOWANCE, and the one guess that node a evaluated before it knew; the lockout counts nothing.
    assert hits[f"admin:{ADMIN_GUESSER}"] == ALLOWANCE + 1, hits
    # Counted under its own name: the booth's allowance of that address is untouched (401, not 429).
    assert f"booth:{ADMIN_GUESSER}" not in hits
    assert await _stranger_post(a, "wrong-guess", ADMIN_GUESSER) == 401


async def test_guesses_at_guest_pages_across_two_nodes_get_one_allowance(two_nodes: tuple[Node, Node, str]) -> None:
    a, b, database = two_nodes
    await ready(a, b)
    await configure_slot(a.base)
    booths = [await post_photo_async(f"{n.base}/booth/gemini/1", make_jpeg(seed=20 + i), UPLOAD_PASSWORD)
              for i, n in enumerate((a, b))]  # fmt: skip
    assert [x.status for x in booths] == [200, 200], [x.body[:200] for x in booths]
    pages = [f"{n.base}{x.headers['x-share-url']}" for n, x in zip((a, b), booths, strict=True)]  # each node's own
    async with _from(PAGE_GUESSER) as guesser, _from(OPERATOR) as guest:
        # A page that exists is served and never touches the shared counts.
        assert [(await guesser.get(page)).status_code for page in pages] == [200, 200]
        assert not [key for key in await _shared_hits(database) if key.startswith("guest:")]

        statuses = [
            (await guesser.get(f"{(a, b)[i % 2].base}/p/{secrets.token_urlsafe(24)}")).status_code
            for i in range(2 * SHARE_GUESSES)
        ]
        # Counting apart, each node would answer 404 to all of them (SHARE_GUESSES each).
        assert statuses == [404] * SHARE_GUESSES + [429] * SHARE_GUESSES, statuses
        # The guesser's real pages are refused on both nodes now; the guest's own (another address) are not.
        assert [(await guesser.get(page)).status_code for page in pages] == [429, 429]
        assert [(await guest.get(page)).status_code for page in pages] == [200, 200]
    hits = await _shared_hits(database)
    assert hits[f"guest:{PAGE_GUESSER}"] == SHARE_GUESSES + 1, hits
    assert f"booth:{PAGE_GUESSER}" not in hits and f"admin:{PAGE_GUESSER}" not in hits


async def test_wrong_gallery_pins_across_two_nodes_count_with_the_guesses(two_nodes: tuple[Node, Node, str]) -> None:
    a, b, database = two_nodes
    await ready(a, b)
    async with httpx.AsyncClient(base_url=a.base, auth=ADMIN, timeout=30) as api:
        created = await api.post("/api/galleries", json={"name": "Party", "slots": ["gemini/1"], "pin": "4321"})
    assert created.status_code == 201, created.text
    path = "/g/" + created.json()["url"].rsplit("/g/", 1)[1]
    ours = {"sec-fetch-site": "same-origin"}  # the gallery page's own form post

    async def pin(client: httpx.AsyncClient, node: Node, value: str) -> int:
        return (await client.post(f"{node.base}{path}/pin", data={"pin": value}, headers=ours)).status_code

    async with _from(PIN_GUESSER) as guesser, _from(OPERATOR) as guest:
        statuses = [await pin(guesser, (a, b)[i % 2], f"{i:04d}") for i in range(SHARE_GUESSES + 2)]
        # Counting apart, each node would answer the wrong-PIN page (303) to all of them.
        assert statuses == [303] * SHARE_GUESSES + [429] * 2, statuses
        assert [await pin(guesser, n, "4321") for n in (a, b)] == [429, 429]  # the right PIN waits too
        assert [await pin(guest, n, "4321") for n in (a, b)] == [303, 303]  # another address's opens it
    assert (await _shared_hits(database))[f"guest:{PIN_GUESSER}"] == SHARE_GUESSES + 1


async def test_a_database_that_does_not_answer_leaves_the_node_its_own_count(silent_database: str) -> None:
    db = Database(silent_database)
    shared = SharedCounts.on(db, keep_minutes=5)
    assert shared is not None
    throttle = Throttle(max_failures=2, lockout_seconds=60)
    throttle.share(shared, "booth")
    try:
        started = time.monotonic()
        throttle.failed("10.0.0.1")
        assert await throttle.failed_everywhere("10.0.0.1") is False  # no shared count: not locked by it
        assert time.monotonic() - started < counts.WAIT_SECONDS + 0.5
        throttle.failed("10.0.0.1")
        assert await throttle.failed_everywhere("10.0.0.1") is False
        assert throttle.retry_after("10.0.0.1") is not None  # the node's own count locked it out
        assert shared.missed == 2
    finally:
        await db.dispose()


async def test_sqlite_has_no_shared_count(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    try:
        assert SharedCounts.on(db, keep_minutes=5) is None  # one machine: the node's own count, as before
    finally:
        await db.dispose()


async def test_counts_sum_their_window_and_old_minutes_are_deleted_on_the_way(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.fresh_database()
    db = Database(url)
    try:
        await db.migrate()
        now = "floor(extract(epoch FROM now()) / 60)::integer"
        async with db.write() as session:  # a key's earlier minutes (2 and 4 ago) and an hour-old row
            await session.execute(text(f"INSERT INTO shared_counts VALUES ('k', {now} - 2, 3), ('k', {now} - 4, 5), "
                                       f"('old', {now} - 60, 9)"))  # fmt: skip
        shared = SharedCounts(db, keep_minutes=5, wait_seconds=5)
        assert await shared.count("k", minutes=3) == 1 + 3  # this minute and the three before it
        assert await shared.count("k", minutes=5) == 2 + 3 + 5
        assert await shared.count("other") == 1
        async with db.read() as session:
            keys = (await session.execute(text("SELECT DISTINCT key FROM shared_counts"))).scalars().all()
        assert sorted(keys) == ["k", "other"]  # the hour-old row went with the first count
    finally:
        await db.dispose()


async def test_the_sweep_keeps_the_longest_lockout_window(postgres_server: PostgresServer) -> None:
    """Each throttle that shares the counts asks for its own window: the guest pages' 10 minutes outlast the
    booth's 5, so a guest count 8 minutes old (within its window) is still there after a booth's count swept
    the table, and one 13 minutes old is gone."""
    url = postgres_server.fresh_database()
    db = Database(url)
    try:
        await db.migrate()
        now = "floor(extract(epoch FROM now()) / 60)::integer"
        async with db.write() as session:
            await session.execute(text(f"INSERT INTO shared_counts VALUES ('guest:x', {now} - 8, 5), "
                                       f"('guest:x', {now} - 13, 7)"))  # fmt: skip
        shared = SharedCounts(db, keep_minutes=2, wait_seconds=5)
        booth, guest = Throttle(4, 300), Throttle(SHARE_GUESSES, 600)
        booth.share(shared, "booth")
        guest.share(shared, "guest")
        booth.failed("10.0.0.1")
        assert await booth.failed_everywhere("10.0.0.1") is False  # the first count of this node sweeps
        assert await _shared_hits(url) == {"guest:x": 5, "booth:10.0.0.1": 1}
    finally:
        await db.dispose()
