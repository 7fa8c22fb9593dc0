"""Three nodes behind Caddy (issue 27): three real `boothgate serve` processes on one real PostgreSQL and one
real SeaweedFS bucket, behind a real Caddy (Debian's 2.6) running deploy/cluster/Caddyfile itself (imported
unchanged; only its placeholders set: a plain-http loopback address and the nodes' ports), the real Gemini
module against its wire fake (each node with its own key, so the fake knows which node called it).

The tests run in this order on one cluster (module fixture); the last two take nodes away.

- 100 booths posting through Caddy, 8 at a time, to a slot the fake answers and one it refuses: every booth
  is answered, every node took some, and the statistics read through each node equal the answers given
  (received, succeeded, failed);
- a slot edited through node A's own port is what node B's next photo (B's own port) runs with;
- the bucket stopped: every node's /health answers 503 naming storage, so Caddy's health checks have
  every node out; a booth posting to a node directly gets its slot's on_failure answer in time, and so does
  a booth posting through Caddy: Caddy 2.6 itself would answer it an empty 503 at once (no node healthy),
  the Caddyfile's handle_errors sends it to a node anyway; with the bucket back every node and Caddy answer
  200 again;
- node C SIGTERMed mid-burst (the server process alone, as systemd stops it): every booth C had at the
  provider is answered 200 by C, Caddy's health check takes C out during its drain (C gets no booth later),
  the rest of the burst is answered by A and B, and C exits by itself after its drain;
- node B SIGKILLed mid-burst: every booth post through Caddy gets an HTTP answer. Every post that started
  after the kill is answered 200 (those Caddy still sent to B met a refused connection, which Caddy retries
  on A; then the health check has B out). A post B had already received dies with B: Caddy answers it 502
  and does not send it again (Caddy 2.6 cannot replay a sent POST body, see the Caddyfile), so the test
  allows 502 for those only, at most the few that were in flight at once. The survivor's /health stays
  200, and Caddy's too.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import UPLOAD_PASSWORD, make_jpeg, post_photo_async
from tests.fakes.server import free_port, serve
from tests.nodes.cluster import (
    ClusterGemini,
    Node,
    Timed,
    burst,
    caddy_took_out,
    configure_slot,
    front_ready,
    node_key,
    photos_on,
    provider_today,
    ready,
    start_caddy,
    start_node,
)
from tests.postgres_support import PostgresServer
from tests.s3_support import S3Server

pytestmark = pytest.mark.slow
NAMES = ["a", "b", "c"]
DRAIN = 5.0  # Caddy's health_interval is 1 s: by the drain's end it has long taken the node out
DEADLINE = 40.0
MEDIA_TIMEOUT = 2.0
SLACK = 0.5  # an answer's way back to the booth
COUNTS = ("received", "succeeded", "failed", "timed_out", "rejected", "moderated")
REFUSED = "as a pirate fake-mode-prompt_blocked-mode"  # the fake refuses this slot's every photo (safety)


@dataclass
class Cluster:
    nodes: dict[str, Node]
    front: str  # Caddy
    fake: ClusterGemini
    root: Path
    s3: S3Server
    caddy: subprocess.Popen[bytes]

    def __getattr__(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise AttributeError(name) from None


@pytest.fixture(scope="module")
def cluster(
    postgres_server: PostgresServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if shutil.which("caddy") is None:
        pytest.skip("Debian's caddy is not installed (scripts/install-test-system-deps.sh installs it)")
    root = tmp_path_factory.mktemp("cluster")
    fake = ClusterGemini(NAMES)
    database = postgres_server.fresh_database()
    shared = s3_server.settings("caddy-cluster", drain_seconds=DRAIN, media_timeout_seconds=MEDIA_TIMEOUT)
    shared["deadline_seconds"] = DEADLINE
    with serve(fake.app) as fake_url:
        # All at once on a fresh database, as systemd starts them: the migration takes turns under its
        # advisory lock and the slots are created once (SlotService.ensure skips rows another node made).
        nodes = {
            name: start_node(name, root, fake_url, database, gemini_api_key=node_key(name), **shared) for name in NAMES
        }
        port = free_port()
        caddy = start_caddy(root / "caddy", port, list(nodes.values()))
        front = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(ready(*nodes.values()))
            a = nodes["a"]
            asyncio.run(configure_slot(a.base, 1, prompt="as a pirate"))
            asyncio.run(configure_slot(a.base, 2, prompt=REFUSED))
            asyncio.run(configure_slot(a.base, 3, prompt="as a pirate", on_failure="original"))
            asyncio.run(front_ready(front, caddy, root / "caddy" / "caddy.log"))
            yield Cluster(nodes, front, fake, root, s3_server, caddy)
        finally:
            caddy.terminate()
            caddy.wait(10)
            for node in nodes.values():
                node.stop()


async def test_hundred_booths_through_caddy_are_all_answered_and_the_statistics_equal_the_answers(
    cluster: Cluster,
) -> None:
    cluster.fake.default_mode = "image"
    before = {name: await provider_today(node.base) for name, node in cluster.nodes.items()}
    photos_before = {name: photos_on(node, cluster.root) for name, node in cluster.nodes.items()}
    # Every fifth booth posts to the slot the fake refuses: its answer is the slot's on_failure error.
    urls = {seed: f"{cluster.front}/booth/gemini/{2 if seed % 5 == 0 else 1}" for seed in range(1000, 1100)}
    answers = await burst(urls, at_once=8)
    assert all(isinstance(answer, Timed) for answer in answers.values()), answers
    timed = {seed: answer for seed, answer in answers.items() if isinstance(answer, Timed)}
    ok = [seed for seed, answer in timed.items() if answer.status == 200]
    refused = {seed: answer.status for seed, answer in timed.items() if answer.status != 200}
    assert sorted(refused) == [seed for seed in urls if seed % 5 == 0], refused
    assert all(timed[seed].content_type.startswith("image/") for seed in ok)
    assert all(timed[seed].content_type == "application/json" and b'"error"' in timed[seed].body for seed in refused)
    # least_conn with eight at a time: every node took booths (each keeps its originals' working copy)
    took = {name: photos_on(node, cluster.root) - photos_before[name] for name, node in cluster.nodes.items()}
    assert all(took.values()) and sum(took.values()) == len(urls), took
    for name, node in cluster.nodes.items():  # one database: the same figures through every node
        after = await provider_today(node.base)
        delta = {key: after[key] - before[name][key] for key in COUNTS}
        assert delta == dict(zip(COUNTS, (len(urls), len(ok), len(refused), 0, 0, 0), strict=True)), (name, delta)
        assert after["in_progress"] == 0, after
    print(f"booths per node: {took}; answers: {len(ok)} x 200, {sorted(set(refused.values()))} x {len(refused)}")


async def test_a_slot_edited_on_node_a_is_used_by_node_b_next_photo(cluster: Cluster) -> None:
    cluster.fake.default_mode = "image"
    url = f"{cluster.b.base}/booth/gemini/1"
    await configure_slot(cluster.a.base, prompt="as an astronaut")
    first = await post_photo_async(url, make_jpeg(seed=300), UPLOAD_PASSWORD, timeout=60)
    assert first.status == 200 and "as an astronaut" in cluster.fake.received[-1].text
    await configure_slot(cluster.a.base, prompt="as a deep-sea diver")
    second = await post_photo_async(url, make_jpeg(seed=301), UPLOAD_PASSWORD, timeout=60)
    assert second.status == 200 and "as a deep-sea diver" in cluster.fake.received[-1].text
    assert "as an astronaut" not in cluster.fake.received[-1].text


async def _healths_until(cluster: Cluster, status: int) -> dict[str, httpx.Response]:
    """Every node's /health, asked until each answers `status` (a node asks its bucket at most every 5 s)."""
    until = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            healths = {name: await client.get(f"{node.base}/health") for name, node in cluster.nodes.items()}
            if all(health.status_code == status for health in healths.values()):
                return healths
            assert time.monotonic() < until, {name: health.text[:300] for name, health in healths.items()}
            await asyncio.sleep(0.25)


async def test_bucket_stopped_every_node_says_so_and_booths_get_on_failure_in_time(cluster: Cluster) -> None:
    cluster.fake.default_mode = "image"
    calls_before = len(cluster.fake.received)
    cluster.s3.stop()
    try:
        healths = await _healths_until(cluster, 503)
        all_out = time.time()  # from now on every check of Caddy's fails
        for health in healths.values():
            storage = health.json()["storage"]
            assert storage["kind"] == "s3" and storage["problem"], storage
            assert "secret" not in health.text.lower()
        # A booth posting to a node directly: its slot's on_failure answer (its own photo) in time.
        sent = make_jpeg(seed=500)
        started = time.monotonic()
        direct = await post_photo_async(f"{cluster.c.base}/booth/gemini/3", sent, UPLOAD_PASSWORD, timeout=60)
        took = time.monotonic() - started
        assert direct.status == 200 and direct.body == sent, direct.body[:300]
        assert direct.headers["x-boothgate-fallback"] == "storage_unavailable"
        assert took < DEADLINE + SLACK, took
        # Through Caddy, once its health checker has taken every node out of its rotation: Caddy's own 503
        # sends the booth to a node anyway (the Caddyfile's handle_errors), the same on_failure answer.
        await caddy_took_out(cluster.root / "caddy" / "caddy.log", list(cluster.nodes.values()), all_out)
        sent = make_jpeg(seed=501)
        started = time.monotonic()
        through = await post_photo_async(f"{cluster.front}/booth/gemini/3", sent, UPLOAD_PASSWORD, timeout=60)
        took = time.monotonic() - started
        print(f"through Caddy with no node healthy: {through.status} in {took:.2f} s")
        assert through.status == 200 and through.body == sent, (through.status, through.body[:300])
        assert through.headers["x-boothgate-fallback"] == "storage_unavailable"
        assert took < DEADLINE + SLACK, took
        async with httpx.AsyncClient(timeout=60) as client:  # Caddy's /health is a node's: 503, storage
            front_health = await client.get(f"{cluster.front}/health")
        assert front_health.status_code == 503 and front_health.json()["storage"]["problem"], front_health.text
        assert len(cluster.fake.received) == calls_before  # no provider was paid for a photo not kept
    finally:
        cluster.s3.start()
    await _healths_until(cluster, 200)
    await front_ready(cluster.front, cluster.caddy, cluster.root / "caddy" / "caddy.log")


async def test_sigterm_of_one_node_mid_burst_its_booths_are_answered_and_caddy_takes_it_out(
    cluster: Cluster,
) -> None:
    fake, c = cluster.fake, cluster.c
    fake.slow_seconds, fake.default_mode = 1.0, "slow"  # booths stay at the provider for a second
    started = time.monotonic()
    signalled: list[float] = []

    async def terminate_when_busy_then_wait() -> tuple[int, float]:
        until = time.monotonic() + 30
        while fake.calls("c", since=started) < 2:  # booths of this burst at the provider through C
            assert time.monotonic() < until, "no booth reached the provider through C"
            await asyncio.sleep(0.02)
        c.terminate()
        signalled.append(time.monotonic())
        code = await c.wait(DRAIN + DEADLINE + 15)  # its exit code and when it came
        return code, time.monotonic() - signalled[0]

    urls = {seed: f"{cluster.front}/booth/gemini/1" for seed in range(600, 636)}
    terminator = asyncio.create_task(terminate_when_busy_then_wait())
    answers = await burst(urls, at_once=6)
    code, after = await terminator
    signal_at = signalled[0]
    in_flight_at_c = fake.calls("c", since=started, until=signal_at)
    statuses = [getattr(answer, "status", repr(answer)) for answer in answers.values()]
    assert statuses == [200] * len(urls), statuses  # C's booths at the provider too: none dropped
    assert in_flight_at_c >= 2
    # Caddy's health check (every second) took C out while C still served (its drain): C's last booth
    # reached the provider well before the drain ended, and A and B answered the rest of the burst.
    last_at_c = max(at for at, who in fake.arrivals if who == "c") - signal_at
    assert last_at_c < DRAIN - 1.5, last_at_c
    after_out = signal_at + DRAIN - 1.5
    assert fake.calls("a", since=after_out) + fake.calls("b", since=after_out) > 0
    # C exits by itself once drained and its booths are answered, and not before its drain.
    print(
        f"C: {in_flight_at_c} at the provider at SIGTERM, last booth +{last_at_c:.2f} s, exit {code} at +{after:.2f} s"
    )
    assert code in (0, -signal.SIGTERM), (code, c.log_text())
    assert DRAIN <= after < DRAIN + DEADLINE + 5, after
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(f"{cluster.front}/health")).status_code == 200


async def test_sigkill_of_one_node_mid_burst_every_booth_through_caddy_is_answered(cluster: Cluster) -> None:
    fake = cluster.fake
    fake.slow_seconds, fake.default_mode = 1.0, "slow"  # booths stay in flight on both nodes for a second
    at_once, seeds = 4, range(400, 424)
    started = time.monotonic()
    killed_at: list[float] = []

    async def kill_when_busy() -> None:
        until = time.monotonic() + 30
        while fake.calls("a", since=started) + fake.calls("b", since=started) < at_once:  # at both nodes
            assert time.monotonic() < until, "no booth reached the provider"
            await asyncio.sleep(0.02)
        cluster.b.signal(signal.SIGKILL)
        killed_at.append(time.monotonic())

    killer = asyncio.create_task(kill_when_busy())
    answers = list((await burst({seed: f"{cluster.front}/booth/gemini/1" for seed in seeds}, at_once)).values())
    await killer
    assert await cluster.b.wait(10) == -signal.SIGKILL
    assert all(isinstance(answer, Timed) for answer in answers), answers  # every booth got an HTTP answer
    timed = [answer for answer in answers if isinstance(answer, Timed)]
    after_kill = [answer.status for answer in timed if answer.started > killed_at[0]]
    during = [answer.status for answer in timed if answer.started <= killed_at[0]]
    assert len(after_kill) >= len(seeds) - 2 * at_once and after_kill == [200] * len(after_kill), (during, after_kill)
    # in flight when B died: answered by A (200) or, if it was at B, 502 from Caddy; never anything else
    assert set(during) <= {200, 502} and during.count(502) <= at_once, during
    assert during.count(200) > 0  # the booths at A went on
    print(f"in flight at the kill: {during}; started after it: {len(after_kill)} x 200")
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(f"{cluster.a.base}/health")).status_code == 200
        assert (await client.get(f"{cluster.front}/health")).status_code == 200  # Caddy routes to the survivor
