"""Wrong passwords and strangers' records are counted by every node together (issue 27): two real
`boothgate serve` processes on one real PostgreSQL, a stranger's wrong passwords alternating between them
(as Caddy's least_conn sends them) are answered 429 after the one allowance, not one allowance per node,
and its records stop at one budget; a booth with the right password is answered 200 on both nodes.
The stranger speaks from 127.0.0.2 (all of 127/8 is loopback), the booth from 127.0.0.1.

And the shared count never stands in a booth's way: a database that accepts the connection and never
answers gives no count within the bound, and the node's own count decides."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from boothgate.booth.throttle import Throttle
from boothgate.storage import counts
from boothgate.storage.counts import SharedCounts
from boothgate.storage.db import Database
from tests.conftest import UPLOAD_PASSWORD, make_jpeg, post_photo_async
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve
from tests.nodes.cluster import GEMINI_KEY, Node, configure_slot, ready, start_node
from tests.postgres_support import PostgresServer

pytestmark = pytest.mark.slow
ALLOWANCE = 4  # wrong passwords before an address is locked out
RECORDS = 2  # strangers' records per address and minute
STRANGER = "127.0.0.2"


@pytest.fixture
def gemini() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=GEMINI_KEY)
    with serve(fake.app) as url:
        yield fake, url


async def _stranger_post(node: Node, password: str) -> int:
    transport = httpx.AsyncHTTPTransport(local_address=STRANGER)
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


async def test_wrong_passwords_across_two_nodes_get_one_allowance(
    tmp_path: Path, gemini: tuple[GeminiFake, str], postgres_server: PostgresServer
) -> None:
    _, url = gemini
    database = postgres_server.fresh_database()
    settings = {
        "auth_max_failures": ALLOWANCE,
        "auth_lockout_seconds": 300,
        "unauthenticated_records_per_minute": RECORDS,
        # A loaded 2-core machine may take longer than the default 0.1 s; not waiting is tested below.
        "shared_count_wait_seconds": 5,
    }
    a = start_node("a", tmp_path, url, database, **settings)
    b = start_node("b", tmp_path, url, database, **settings)
    try:
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
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def silent_database() -> Iterator[str]:
    """A port that accepts connections and never says a word (a database that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{listener.getsockname()[1]}/boothgate"
    finally:
        listener.close()


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
