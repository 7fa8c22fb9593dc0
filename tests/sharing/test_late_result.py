"""The late AI result (issue 30): Gemini (real google-genai SDK against the loopback fake) slower than the
booth's deadline, fallback `local/1`, `late_result_seconds: 120`. The booth gets the local (black and
white) result at once; the fake's (colourful) image reaches the guest's page later, from the same
provider call — Gemini is asked exactly once — and the job counts as delivered late.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from boothgate.cli.booth_client import post_photo_async
from boothgate.web.app import create_app
from tests.conftest import ADMIN, UPLOAD_PASSWORD, Booth, booth_settings
from tests.fakes.server import free_port, serve
from tests.fakes.turbotext import FakeTurbotext
from tests.fallback_support import (
    LocalStandIn,
    TimedGeminiFake,
    is_black_and_white,
    is_colourful,
    local_classes,
    local_slot,
)
from tests.gemini_support import PHOTO_TINT, encode, gradient
from tests.waits import eventually

REPO = Path(__file__).resolve().parents[2]
KEY = "late-test-gemini-key"
DEADLINE = 8.0  # room for a loaded machine: the local fallback is given 3 s of it


@pytest.fixture
def fake() -> Iterator[tuple[TimedGeminiFake, str]]:
    gemini = TimedGeminiFake(api_key=KEY)
    with serve(gemini.app) as url:
        yield gemini, url


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    stack: list[Any] = []

    def run(gemini_base_url: str, **overrides: Any) -> Booth:
        port = free_port()
        values: dict[str, Any] = {
            "deadline_seconds": DEADLINE,
            "gemini_api_key": KEY,
            "gemini_base_url": gemini_base_url,
            "local_budget_seconds": 3.0,
            "fallback_margin_seconds": 0.5,
            "public_base_url": f"http://127.0.0.1:{port}",
        }
        values.update(overrides)
        app = create_app(booth_settings(tmp_path, **values), local_classes())
        context = serve(app, port=port)
        url = context.__enter__()
        stack.append(context)
        return Booth(url, booth_settings(tmp_path, **values), app)

    LocalStandIn.started.clear()
    yield run
    for context in reversed(stack):
        context.__exit__(None, None, None)


async def wait_for_job(booth: Booth, job_id: str, check: Any, timeout: float = 90.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    async with booth.api() as api:
        while time.monotonic() < end:
            job: dict[str, Any] = (await api.get(f"/api/jobs/{job_id}")).json()
            if check(job):
                return job
            await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach the expected state: {job}")


async def test_slow_gemini_answers_the_booth_with_local_and_the_page_gets_gemini_later(
    start: Any, fake: tuple[TimedGeminiFake, str]
) -> None:
    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", DEADLINE + 3  # slower than the booth's deadline
    booth = start(url)
    await local_slot(booth)
    await booth.configure("gemini", 1, kind="prompt", prompt="as pirates", fallback="local/1", late_result_seconds=120)

    answer = await booth.post("gemini", 1, encode(gradient(900, 600, PHOTO_TINT)))

    assert answer.status == 200, answer.body[:300]
    assert is_black_and_white(answer.body)  # the local fallback served the guest
    assert answer.seconds < DEADLINE + 0.5
    share_url = answer.headers["x-share-url"]
    job_id = answer.headers["x-job-id"]
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.get(share_url, headers={"accept-language": "en"})
        assert first.status_code == 200 and "The AI version is still being made" in first.text
        assert '<meta http-equiv="refresh"' in first.text
    job = await wait_for_job(booth, job_id, lambda j: (j["late"] or {}).get("status") == "running")
    assert job["late"]["served_by"] == "local/1" and job["served_by"] == "local/1"

    job = await wait_for_job(booth, job_id, lambda j: (j["late"] or {}).get("status") == "delivered")

    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(share_url, headers={"accept-language": "en"})
        assert "The AI version is ready" in page.text and 'http-equiv="refresh"' not in page.text
        download = await client.get(share_url + "/download")
    assert is_colourful(download.content)  # the fake Gemini's image, not the local one
    assert Image.open(io.BytesIO(download.content)).size == (900, 600)  # shaped like the print
    assert len(gemini.received) == 1  # the same call went on: Gemini was asked once, billed once
    assert [h["event"] for h in job["history"]] == ["late_result_delivered"]
    stats = await booth.stats()
    slot = next(s for s in stats["slots"] if (s["provider"], s["number"]) == ("gemini", 1))
    assert slot["all_time"]["delivered_late"] == 1 and slot["all_time"]["served_by_fallback"] == 1
    assert stats["providers"]["gemini"]["all_time"]["delivered_late"] == 1
    async with booth.api() as api:  # the job list and the live view say so too
        listed = (await api.get("/api/jobs")).json()
        live = (await api.get("/api/live")).json()
    assert next(j for j in listed if j["id"] == job_id)["late"] == {
        "status": "delivered",
        "served_by": "local/1",
        "reason": None,
    }
    assert next(j for j in live["latest"] if j["id"] == job_id)["late"]["status"] == "delivered"


async def test_without_late_result_the_slow_call_is_hung_up_on(start: Any, fake: tuple[TimedGeminiFake, str]) -> None:
    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", 60
    booth = start(url)
    await local_slot(booth)
    await booth.configure("gemini", 1, kind="prompt", prompt="as pirates", fallback="local/1")
    answer = await booth.post("gemini", 1, encode(gradient(900, 600, PHOTO_TINT)))
    assert answer.status == 200 and is_black_and_white(answer.body)
    for _ in range(200):  # up to 10 s
        if gemini.gone:
            break
        await asyncio.sleep(0.05)
    assert gemini.gone  # today's behaviour: nothing talks to Gemini after the booth has its answer
    job = await wait_for_job(booth, answer.headers["x-job-id"], lambda j: j["status"] == "succeeded")
    assert job["late"] is None


async def test_late_result_past_its_limit_expires(start: Any, fake: tuple[TimedGeminiFake, str]) -> None:
    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", 60
    booth = start(url)
    await local_slot(booth)
    await booth.configure("gemini", 1, kind="prompt", prompt="x", fallback="local/1", late_result_seconds=2)
    answer = await booth.post("gemini", 1, encode(gradient(900, 600, PHOTO_TINT)))
    assert answer.status == 200
    job = await wait_for_job(booth, answer.headers["x-job-id"], lambda j: (j["late"] or {}).get("status") == "expired")
    assert job["late"]["reason"] == "limit"
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(answer.headers["x-share-url"], headers={"accept-language": "en"})
    assert page.status_code == 200 and "Your photo is ready" in page.text  # the local print stays the page's photo


async def test_a_turbotext_that_downloads_the_photo_after_the_booths_answer_still_gets_it(start: Any) -> None:
    """The guest's photo reaches Turbotext by a short-lived link (records/media_links.py) that ends when
    the booth is answered — but not while the same call goes on as a late run: a busy service that
    downloads its inputs only when the job's turn comes (here after the booth got the local print) still
    gets the photo, and the link ends with the late run."""
    turbotext = FakeTurbotext(fetch_after_seconds=DEADLINE + 1)
    with serve(turbotext.app) as turbotext_url:
        booth = start(
            "http://127.0.0.1:9", turbotext_api_key=turbotext.api_key, turbotext_base_url=f"{turbotext_url}/api_ai",
            turbotext_poll_interval_seconds=0.2,
        )  # fmt: skip
        await local_slot(booth)
        await booth.configure("turbotext", 1, kind="prompt", prompt="as pirates", fallback="local/1",
                              late_result_seconds=120)  # fmt: skip

        answer = await booth.post("turbotext", 1, encode(gradient(900, 600, PHOTO_TINT)))

        assert answer.status == 200 and is_black_and_white(answer.body), answer.body[:300]  # local served
        job = await wait_for_job(
            booth, answer.headers["x-job-id"], lambda j: (j["late"] or {}).get("status") in ("delivered", "expired")
        )
        assert job["late"]["status"] == "delivered", job["late"]
        assert [f.status for f in turbotext.fetches] == [200]  # one download, and it found the photo
        async with httpx.AsyncClient(timeout=30) as client:
            download = await client.get(answer.headers["x-share-url"] + "/download")
            again = await client.get(turbotext.fetches[0].url)  # the late run is over: so is its link
    assert is_colourful(download.content)  # Turbotext's (mirrored colour) image, not the local one
    assert len(turbotext.calls("create_queue")) == 1
    assert again.status_code == 404


# --- a real server process, killed with SIGKILL during the late run -----------------------------------
class LateServer:
    """`python -m tests.fakes.late_app` with its data in `data_dir`; stderr kept in `log`."""

    def __init__(self, data_dir: Path, log: Path, gemini_url: str) -> None:
        self.data_dir, self.log, self.gemini_url = data_dir, log, gemini_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTHGATE_")}
        env.update(
            PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]),
            BOOTHGATE_DATA_DIR=str(self.data_dir),
            BOOTHGATE_PORT=str(self.port),
            BOOTHGATE_ADMIN_PASSWORD=ADMIN[1],
            BOOTHGATE_UPLOAD_PASSWORD=UPLOAD_PASSWORD,
            BOOTHGATE_GEMINI_API_KEY=KEY,
            BOOTHGATE_GEMINI_BASE_URL=self.gemini_url,
            BOOTHGATE_DEADLINE_SECONDS=str(DEADLINE),
            BOOTHGATE_LOCAL_BUDGET_SECONDS="3.0",
            BOOTHGATE_FALLBACK_MARGIN_SECONDS="0.5",
            BOOTHGATE_PUBLIC_BASE_URL=self.url,
            BOOTHGATE_WORK_LEASE_SECONDS="3",
        )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fakes.late_app"], cwd=REPO, env=env, stdout=log, stderr=log
            )
        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert self.process.poll() is None, f"server exited: {self.log.read_text()[-2000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError("server did not come up")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, auth=ADMIN, timeout=30)


async def _job(server: LateServer, job_id: str, check: Any, timeout: float = 90.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    job: dict[str, Any] = {}
    async with server.api() as api:
        while time.monotonic() < end:
            with contextlib.suppress(httpx.HTTPError):
                job = (await api.get(f"/api/jobs/{job_id}")).json()
                if check(job):
                    return job
            await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach the expected state: {job}")


async def test_sigkill_during_the_late_run_still_delivers_and_never_calls_again(
    tmp_path: Path, fake: tuple[TimedGeminiFake, str]
) -> None:
    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", 600  # the first call never answers in time
    server = LateServer(tmp_path / "data", tmp_path / "server.log", url)
    server.start()
    try:
        async with server.api() as api:
            for number, body in (
                (1, {"kind": "prompt", "prompt": "noir", "options": {"style": "noir"}, "enabled": True}),
            ):
                assert (await api.put(f"/api/slots/local/{number}", json=body)).status_code == 200
            body = {"kind": "prompt", "prompt": "as pirates", "fallback": "local/1", "late_result_seconds": 120}
            assert (await api.put("/api/slots/gemini/1", json={**body, "enabled": True})).status_code == 200
        answer = await post_photo_async(
            f"{server.url}/booth/gemini/1", encode(gradient(900, 600, PHOTO_TINT)), UPLOAD_PASSWORD
        )
        assert answer.status == 200 and is_black_and_white(answer.body)
        job_id = answer.headers["x-job-id"]
        await _job(server, job_id, lambda j: (j["late"] or {}).get("status") == "running")
        assert len(gemini.received) == 1

        server.kill()  # SIGKILL while Gemini is still working on the late run
        gemini.default_mode = "image"  # after the restart the service answers
        server.start()

        job = await _job(server, job_id, lambda j: (j["late"] or {}).get("status") == "delivered")
        assert len(gemini.received) == 2  # the lost call was started again once
        async with httpx.AsyncClient(timeout=30) as client:
            download = await client.get(answer.headers["x-share-url"] + "/download")
        assert download.status_code == 200 and is_colourful(download.content)
        assert job["late"]["served_by"] == "local/1"

        # The result is stored: however often the server dies and comes back, Gemini is not asked again.
        for _ in range(2):
            server.kill()
            server.start()
            await asyncio.sleep(4)  # longer than a lease: any leftover claim would have been taken over
        assert len(gemini.received) == 2
        job = await _job(server, job_id, lambda j: True)
        assert job["late"]["status"] == "delivered"
        assert [h["event"] for h in job["history"]] == ["late_result_delivered"]
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


async def test_on_failure_original_then_the_ai_version_later(start: Any, fake: tuple[TimedGeminiFake, str]) -> None:
    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", DEADLINE + 3
    booth = start(url)
    await booth.configure("gemini", 2, kind="prompt", prompt="x", on_failure="original", late_result_seconds=120)
    photo = encode(gradient(900, 600, PHOTO_TINT))
    answer = await booth.post("gemini", 2, photo)
    assert answer.status == 200 and answer.body == photo  # the guest's own photo was printed
    job = await wait_for_job(
        booth, answer.headers["x-job-id"], lambda j: (j["late"] or {}).get("status") == "delivered"
    )
    assert job["late"]["served_by"] == "original" and job["status"] == "timed_out"
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(answer.headers["x-share-url"], headers={"accept-language": "en"})
        download = await client.get(answer.headers["x-share-url"] + "/download")
    assert "The AI version is ready" in page.text and download.content != photo
    assert len(gemini.received) == 1


async def test_an_expired_page_says_so(start: Any, fake: tuple[TimedGeminiFake, str]) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from boothgate.storage.db import Database
    from boothgate.storage.models import Job, utcnow

    _gemini, url = fake
    booth = start(url)
    await booth.configure("gemini", 3, kind="prompt", prompt="x")
    answer = await booth.post("gemini", 3, encode(gradient(900, 600, PHOTO_TINT)))
    assert answer.status == 200
    db = Database(booth.settings.sqlalchemy_url)  # our own connection: the server's lives on its own loop
    async with db.write() as session:  # as if taken longer ago than retention_days (30)
        await session.execute(
            update(Job).where(Job.id == answer.headers["x-job-id"]).values(created_at=utcnow() - timedelta(days=31))
        )
    await db.dispose()
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(answer.headers["x-share-url"], headers={"accept-language": "en"})
    assert page.status_code == 410 and "This photo has expired" in page.text


async def test_late_work_waits_behind_booths_on_the_image_workers(tmp_path: Path) -> None:
    """One worker, busy; a late shaping and then a booth's queue for it: the booth goes first."""
    from boothgate.booth.late import behind_booths
    from boothgate.deadline import Deadline
    from boothgate.imaging.workers import ImageWorkers
    from tests import worker_tasks

    workers = ImageWorkers(1)
    try:
        flag, order = tmp_path / "go", tmp_path / "order"
        busy = asyncio.create_task(
            workers.run(time.monotonic() + 60, worker_tasks.wait_for, str(flag), str(tmp_path / "p"))
        )
        for _ in range(400):
            if (tmp_path / "p").exists():
                break
            await asyncio.sleep(0.05)
        late_due = behind_booths(Deadline(time.monotonic() + 5), booth_seconds=48.0)
        late = asyncio.create_task(workers.run(late_due, worker_tasks.append, str(order), "late"))
        await eventually(lambda: workers.queued == 1, "the late work to be queued")  # the late work queues first ...
        booth = asyncio.create_task(workers.run(time.monotonic() + 48, worker_tasks.append, str(order), "booth"))
        await eventually(lambda: workers.queued == 2, "the booth's work to be queued")
        flag.write_text("go")
        await asyncio.gather(busy, late, booth)
        assert order.read_text().split() == ["booth", "late"]  # ... and the booth is served before it
    finally:
        workers.shutdown()


async def test_a_delivered_late_result_is_told_to_webhook_subscribers(
    start: Any, fake: tuple[TimedGeminiFake, str]
) -> None:
    """`job.delivered_late` (the client API's webhook) reaches a verifying receiver once the page has it."""
    from tests.api.test_client_webhooks import Receiver, add_endpoint, until

    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", DEADLINE + 2
    booth = start(url, webhooks_allow_private=True)
    await local_slot(booth)
    await booth.configure("gemini", 1, kind="prompt", prompt="x", fallback="local/1", late_result_seconds=120)
    receiver = Receiver()
    with serve(receiver.app()) as hook_url:
        created = await add_endpoint(booth, f"{hook_url}/hook", ["job.delivered_late"])
        assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]
        answer = await booth.post("gemini", 1, encode(gradient(900, 600, PHOTO_TINT)))
        assert answer.status == 200
        await wait_for_job(booth, answer.headers["x-job-id"], lambda j: (j["late"] or {}).get("status") == "delivered")
        await until(lambda: "job.delivered_late" in receiver.delivered(), timeout=30.0)
    assert receiver.delivered() == ["job.delivered_late"] and not receiver.bad


async def test_a_late_results_provider_cost_reaches_its_events_budget(
    start: Any, fake: tuple[TimedGeminiFake, str]
) -> None:
    """The booth's settlement counts the handed-on call at its estimate (4K here); the stored late result
    corrects the event's cost to the provider's figure (1K: the model takes no 4K), once."""
    from tests.operator.test_events import create_event, wait_settled

    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", DEADLINE + 3
    booth = start(
        url,
        cost_currency="usd",
        gemini_prices_usd='{"gemini": {"1K": 0.01, "4K": 0.05}}',
        gemini_image_sizes='{"gemini": ["1K"]}',
    )
    await local_slot(booth)
    await booth.configure(
        "gemini", 1, kind="prompt", prompt="as pirates", fallback="local/1", late_result_seconds=120,
        options={"image_size": "4K"},
    )  # fmt: skip
    event = await create_event(booth, slots=["gemini/1", "local/1"], budget={"max_paid_calls": 10})
    answer = await booth.post("gemini", 1, encode(gradient(900, 600, PHOTO_TINT)))
    assert answer.status == 200 and is_black_and_white(answer.body)
    settled = (await wait_settled(booth, event["id"]))["budget"]
    assert settled["paid_calls"] == 1 and settled["cost"] == pytest.approx(0.05)  # the estimate, for now
    job_id = answer.headers["x-job-id"]
    job = await wait_for_job(booth, job_id, lambda j: (j["late"] or {}).get("status") == "delivered")
    assert job["cost_usd"] == pytest.approx(0.01)
    after = (await wait_settled(booth, event["id"]))["budget"]
    assert after["paid_calls"] == 1 and after["cost"] == pytest.approx(0.01)
    assert len(gemini.received) == 1


async def test_a_settings_save_during_the_late_run_leaves_its_provider_open(
    start: Any, fake: tuple[TimedGeminiFake, str]
) -> None:
    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", DEADLINE + 3  # still at Gemini after the booth's answer
    booth = start(url)
    await local_slot(booth)
    await booth.configure("gemini", 1, kind="prompt", prompt="as pirates", fallback="local/1", late_result_seconds=120)
    answer = await booth.post("gemini", 1, encode(gradient(900, 600, PHOTO_TINT)))
    assert answer.status == 200 and is_black_and_white(answer.body)
    job_id = answer.headers["x-job-id"]
    await wait_for_job(booth, job_id, lambda j: (j["late"] or {}).get("status") == "running")
    registry = booth.services.registry
    async with booth.api() as api:  # the operator saves settings while Gemini is still making the AI version
        saved = await api.put("/api/settings", json={"provider_input_pixels": 1_500_000})
    assert saved.status_code == 200, saved.text
    assert registry.retired > 0  # the replaced Gemini client is still open: the late run holds it

    job = await wait_for_job(booth, job_id, lambda j: (j["late"] or {}).get("status") in ("delivered", "expired"))

    assert job["late"]["status"] == "delivered", job["late"]
    assert len(gemini.received) == 1  # the same call, not cut off and made again
    until = time.monotonic() + 5.0
    while registry.retired and time.monotonic() < until:  # noqa: ASYNC110 (state of the server)
        await asyncio.sleep(0.05)
    assert registry.retired == 0, "the replaced providers close once the late run is done"
