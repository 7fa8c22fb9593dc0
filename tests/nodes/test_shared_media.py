"""Media in a shared S3 bucket (issue 27), against a real S3 server (SeaweedFS `weed mini` on loopback,
tests/s3_support.py) and the real Gemini module against its wire fake:

- an original is in the bucket before its provider call starts (the fake looks into the bucket when the
  request reaches it);
- two nodes on one PostgreSQL, one bucket, different data dirs: a result and a reference one node wrote
  are served and used by the other;
- the bucket away (the server stopped, or a socket that never answers): /health answers 503 naming
  storage, the booth gets its slot's on_failure answer before the deadline, the original stays on the
  node and reaches the bucket once it is back.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from boothgate.web.app import create_app
from tests.conftest import ADMIN, TAB_KEYS, Booth, booth_settings
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import free_port, serve
from tests.fakes.turbotext import FakeTurbotext
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, encode, gradient
from tests.postgres_support import PostgresServer
from tests.s3_support import S3Server

pytestmark = pytest.mark.slow
KEY = TAB_KEYS["gemini"]
DEADLINE = 8.0
SLACK = 0.5  # the answer's way back to the booth


class BucketWatchingGemini(GeminiFake):
    """The Gemini fake that, the moment a generateContent request reaches it, lists the bucket's photos."""

    def __init__(self, s3: S3Server, prefix: str) -> None:
        super().__init__(api_key=KEY)
        self.s3, self.prefix = s3, prefix
        self.photos_at_call: list[dict[str, bytes | None]] = []

    async def _handle(self, request: Request) -> JSONResponse:
        keys = await asyncio.to_thread(self.s3.objects, f"{self.prefix}/photos")
        self.photos_at_call.append({k: await asyncio.to_thread(self.s3.get, f"photos/{k}", self.prefix) for k in keys})
        return await super()._handle(request)


@contextmanager
def node(tmp: Path, name: str, fake_url: str, **overrides: Any) -> Iterator[Booth]:
    values = {
        "gemini_api_key": KEY,
        "gemini_base_url": fake_url,
        "deadline_seconds": DEADLINE,
        "image_workers": 1,
        **overrides,
    }
    settings = booth_settings(tmp / name, **values)
    app = create_app(settings, {})  # the built-in provider modules
    with serve(app) as url:
        yield Booth(url, settings, app)


_seed = iter(range(1, 10_000))


def photo() -> bytes:
    tint = tuple(max(0, c - next(_seed) % 9) for c in PHOTO_TINT)
    return encode(gradient(900, 600, tint))  # type: ignore[arg-type]


REFERENCE = encode(gradient(600, 900, REFERENCE_TINT))


@pytest.fixture
def watching(s3_server: S3Server, request: pytest.FixtureRequest) -> Iterator[tuple[BucketWatchingGemini, str]]:
    fake = BucketWatchingGemini(s3_server, request.node.name.replace("_", "-")[:40])
    with serve(fake.app) as url:
        yield fake, url


Pair = tuple[BucketWatchingGemini, Booth, Booth]


@pytest.fixture
def pair(
    tmp_path: Path, s3_server: S3Server, postgres_server: PostgresServer, watching: tuple[BucketWatchingGemini, str]
) -> Iterator[Pair]:
    """Two nodes, A and B, on one fresh PostgreSQL database and the watching fake's bucket prefix, each with
    its own data dir: (the fake, A, B)."""
    fake, url = watching
    shared = {"database_url": postgres_server.fresh_database(), **s3_server.settings(fake.prefix)}
    with node(tmp_path, "a", url, **shared) as a, node(tmp_path, "b", url, **shared) as b:
        yield fake, a, b


async def test_original_is_in_the_bucket_before_its_provider_call(
    tmp_path: Path, s3_server: S3Server, watching: tuple[BucketWatchingGemini, str]
) -> None:
    fake, url = watching
    with node(tmp_path, "a", url, **s3_server.settings(fake.prefix)) as booth:
        await booth.configure("gemini", 1, kind="prompt", prompt="as pirates")
        sent = photo()
        answer = await booth.post("gemini", 1, sent)
        assert answer.status == 200, answer.body[:300]
        job_id = answer.headers["x-job-id"]
        assert len(fake.photos_at_call) == 1  # one provider call, and when it arrived the bucket held:
        [(key, stored)] = fake.photos_at_call[0].items()
        assert key.endswith(f"/{job_id}.jpg") and stored == sent  # the original, byte for byte
        # The result went there too (before the answer), under the same key as on the node's disk.
        [result] = (booth.settings.data_dir / "results").glob(f"*/{job_id}.*")
        relative = result.relative_to(booth.settings.data_dir).as_posix()
        assert s3_server.get(relative, fake.prefix) == result.read_bytes()


async def test_a_result_and_a_reference_written_by_one_node_are_served_by_another(pair: Pair) -> None:
    fake, a, b = pair
    await a.configure("gemini", 2, kind="background", prompt="on the moon")
    await a.set_reference("gemini", 2, REFERENCE)  # stored by content on node A and in the bucket
    answer = await a.post("gemini", 2, photo())
    assert answer.status == 200, answer.body[:300]
    job_id = answer.headers["x-job-id"]
    [result] = (a.settings.data_dir / "results").glob(f"*/{job_id}.*")
    relative = result.relative_to(a.settings.data_dir).as_posix()
    assert not (b.settings.data_dir / relative).exists()  # node B never saw this result
    async with httpx.AsyncClient(base_url=b.url, auth=ADMIN, timeout=30) as client:
        served = await client.get(f"/api/jobs/{job_id}/result")
        photo_on_b = await client.get(f"/api/jobs/{job_id}/photo")
    assert served.status_code == 200 and served.content == answer.body  # from the bucket, by node B
    assert (b.settings.data_dir / relative).read_bytes() == answer.body  # now B's working copy too
    assert photo_on_b.status_code == 200
    # Node B's booth uses the reference node A stored: the fake gets the photo and the reference.
    assert not any((b.settings.data_dir / "references").iterdir())
    calls_before = len(fake.received)
    on_b = await b.post("gemini", 2, photo())
    assert on_b.status == 200, on_b.body[:300]
    sent = fake.received[calls_before]
    assert len(sent.images) == 2, [i.mime for i in sent.images]
    [fetched] = (b.settings.data_dir / "references").iterdir()
    assert fetched.read_bytes() == REFERENCE  # brought from the bucket for that booth


async def test_a_media_link_made_by_one_node_is_served_by_another(tmp_path: Path, s3_server: S3Server) -> None:
    """Turbotext downloads its inputs from the public address, which a balancer may route to any node:
    node A makes the links, Turbotext reaches node B, and B serves them from the bucket until A's booth is
    answered (then they are gone there too)."""
    fake = FakeTurbotext()
    shared = s3_server.settings("links")
    port_b = free_port()
    with ExitStack() as stack:
        fake_url = stack.enter_context(serve(fake.app))
        b_url = stack.enter_context(serve(create_app(booth_settings(tmp_path / "b", **shared), {}), port=port_b))
        a = stack.enter_context(
            node(
                tmp_path, "a", "http://127.0.0.1:9", public_base_url=b_url, turbotext_api_key="tt-test-key",
                turbotext_base_url=f"{fake_url}/api_ai", turbotext_poll_interval_seconds=0.05,
                turbotext_mode="polling", **shared,
            )
        )  # fmt: skip
        await a.configure("turbotext", 1, kind="background", prompt="")
        await a.set_reference("turbotext", 1, REFERENCE)
        answer = await a.post("turbotext", 1, photo())
        assert answer.status == 200, answer.body[:300]
        inputs = [f for f in fake.fetches if "/media/" in f.url]
        assert len(inputs) == 2 and all(f.url.startswith(f"{b_url}/media/") for f in inputs), fake.fetches
        assert [f.status for f in inputs] == [200, 200]  # served by node B, which never made them
        async with httpx.AsyncClient(timeout=10) as client:
            until = time.monotonic() + 5
            while (await client.get(inputs[0].url)).status_code != 404:  # revoked with A's answer
                assert time.monotonic() < until, "a link outlived its job on another node"
                await asyncio.sleep(0.1)


@contextmanager
def silent_socket() -> Iterator[str]:
    """A listener that takes connections and never answers: a wedged S3 endpoint."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def _booth_with_bucket_gone(booth: Booth, fake: GeminiFake) -> None:
    """/health says storage is gone; a booth gets its on_failure answer (its original) before the
    deadline, the provider is never called, and the original is kept on the node (trash + sidecar)."""
    async with httpx.AsyncClient(base_url=booth.url, timeout=30) as client:
        health = await client.get("/health")
    assert health.status_code == 503, health.text
    assert health.json()["storage"]["problem"] and health.json()["storage"]["kind"] == "s3"
    assert "secret" not in health.text.lower() and "boothgate-test-secret" not in health.text
    sent = photo()
    started = time.monotonic()
    answer = await booth.post("gemini", 3, sent)
    took = time.monotonic() - started
    assert took < DEADLINE + SLACK, took
    assert answer.status == 200 and answer.body == sent, answer.body[:300]  # on_failure="original"
    assert answer.headers["x-boothgate-fallback"] == "storage_unavailable"
    assert fake.received == []  # no provider was paid for a photo that could not be kept
    kept = [p for p in booth.trash_files() if p.name.startswith(answer.headers["x-job-id"])]
    assert sorted(p.suffix for p in kept) == [".jpg", ".json"]
    assert next(p for p in kept if p.suffix == ".jpg").read_bytes() == sent


async def test_bucket_stopped_health_503_and_booth_gets_on_failure_in_time(
    tmp_path: Path, s3_server: S3Server, watching: tuple[BucketWatchingGemini, str]
) -> None:
    fake, url = watching
    with node(tmp_path, "a", url, **s3_server.settings(fake.prefix, media_timeout_seconds=2)) as booth:
        await booth.configure("gemini", 3, kind="prompt", prompt="as pirates", on_failure="original")
        async with httpx.AsyncClient(base_url=booth.url, timeout=30) as client:
            assert (await client.get("/health")).status_code == 200
        s3_server.stop()
        try:
            booth.services.media.bucket._checked_at = -1e9  # ask the bucket now, not in 5 s
            await _booth_with_bucket_gone(booth, fake)
        finally:
            s3_server.start()
        # Back: what stayed on the node (the trashed original and its sidecar) goes to the bucket. The
        # server's own catch-up runs every 30 s; here it is asked until the restarted bucket takes writes
        # (its listing answers a moment before its volume server does).
        until = time.monotonic() + 30
        while (left := await asyncio.to_thread(booth.services.media.catch_up)) != 0:
            assert time.monotonic() < until, f"{left} files still not in the bucket"
            await asyncio.sleep(0.5)
        trashed = [p.relative_to(booth.settings.data_dir).as_posix() for p in booth.trash_files()]
        assert set(trashed) <= set(s3_server.objects(fake.prefix)), trashed


async def test_bucket_that_never_answers_is_bounded_by_the_timeout(
    tmp_path: Path, watching: tuple[BucketWatchingGemini, str]
) -> None:
    fake, url = watching
    with ExitStack() as stack:
        endpoint = stack.enter_context(silent_socket())
        settings = {
            "media_url": "s3://media/wedged",
            "media_endpoint_url": endpoint,
            "media_access_key_id": "k",
            "media_secret_access_key": "s",
            "media_timeout_seconds": 1.5,
        }
        booth = stack.enter_context(node(tmp_path, "a", url, **settings))
        await booth.configure("gemini", 3, kind="prompt", prompt="as pirates", on_failure="original")
        await _booth_with_bucket_gone(booth, fake)


def test_dead_port_is_a_storage_problem_not_a_hang(tmp_path: Path) -> None:
    """The bucket's calls themselves: a refused connection is an error at once, named for /health."""
    from boothgate.storage.objects import Bucket, BucketUnavailable

    settings = booth_settings(
        tmp_path, media_url="s3://media/x", media_endpoint_url=f"http://127.0.0.1:{free_port()}",
        media_access_key_id="k", media_secret_access_key="very-secret-value", media_timeout_seconds=2,
    )  # fmt: skip
    bucket = Bucket(settings)
    started = time.monotonic()
    with pytest.raises(BucketUnavailable) as caught:
        bucket.put_bytes("a", b"x")
    assert time.monotonic() - started < 3
    assert bucket.problem and "very-secret-value" not in str(caught.value) + bucket.problem


def test_a_mask_stored_on_one_node_is_the_mask_of_every_node(tmp_path: Path, s3_server: S3Server) -> None:
    """The content check's mask (replaced in place by name, unlike references) is read from the bucket:
    node B answers with node A's upload, its replacement of another type, and nothing once A removes it."""
    from boothgate.run.moderation import Moderation
    from boothgate.storage.media import MediaStore
    from boothgate.storage.objects import Bucket

    def moderation(name: str) -> Moderation:
        settings = booth_settings(tmp_path / name, **s3_server.settings("masks"))
        media = MediaStore(settings.data_dir, Bucket(settings))
        return Moderation(media.root, None, 1024, 85, media)  # type: ignore[arg-type]  # no image work here

    a, b = moderation("a"), moderation("b")
    png, jpeg = encode(gradient(64, 64, (10, 200, 10)), "PNG"), encode(gradient(64, 64, (200, 10, 10)))
    a.store("global", png)
    assert b.read_first(["slot-gemini-01", "global"]) == png
    a.store("global", jpeg)  # another type: the PNG must not win on B
    assert b.read_first(["global"]) == jpeg
    a.remove("global")
    until = time.monotonic() + 5
    while b.read_first(["global"]) is not None:  # the bucket's delete runs in the background
        assert time.monotonic() < until, "a removed mask is still used on another node"
        time.sleep(0.1)
    assert b.find("global") is None  # and B's stale copy is gone with it


def test_deletes_and_expired_days_leave_the_bucket_too(tmp_path: Path, s3_server: S3Server) -> None:
    """A discarded reference and a retention day folder are gone from the bucket, not only from the node."""
    from boothgate.storage.media import MediaStore
    from boothgate.storage.objects import Bucket

    settings = booth_settings(tmp_path, **s3_server.settings("deletes"))
    media = MediaStore(settings.data_dir, Bucket(settings))
    reference = media.relative(media.store_content("references", REFERENCE, "jpeg"))
    result = media.relative(media.write_result("job1", b"\xff\xd8\xffresult", "image/jpeg"))
    assert {reference, result} <= set(s3_server.objects("deletes"))
    media.holds.discard(reference)  # nobody holds it: deleted now, here and there
    media.forget_prefix(result.rsplit("/", 1)[0] + "/")  # retention's expired day
    until = time.monotonic() + 5
    while set(s3_server.objects("deletes")) & {reference, result}:
        assert time.monotonic() < until, s3_server.objects("deletes")
        time.sleep(0.1)
    assert not (settings.data_dir / reference).exists()


async def test_the_same_photo_posted_to_two_nodes_at_once_makes_one_provider_call(pair: Pair) -> None:
    fake, a, b = pair
    await a.configure("gemini", 3, kind="prompt", prompt="as pirates")
    fake.default_mode, fake.slow_seconds = "slow", 1.5  # both posts arrive while the first call runs
    sent = photo()
    calls_before = len(fake.received)
    first, second = await asyncio.gather(a.post("gemini", 3, sent), b.post("gemini", 3, sent))
    assert (first.status, second.status) == (200, 200), (first.body[:200], second.body[:200])
    assert len(fake.received) - calls_before == 1  # one paid call for the photo the booth sent twice
    assert first.body == second.body
    ids = {first.headers["x-job-id"], second.headers["x-job-id"]}
    reused = [answer.headers.get("x-reused-from") for answer in (first, second)]
    assert reused.count(None) == 1 and set(reused) - {None} <= ids  # the later one joined the first
    # A different photo on the other node is its own call.
    other = await b.post("gemini", 3, photo())
    assert other.status == 200 and len(fake.received) - calls_before == 2
