"""Outgoing webhooks (issue 26): a receiver on loopback verifies every delivery with the `standardwebhooks`
reference library, is retried after a 500, gets each event once after a 200; private targets need the
setting; deliveries survive a restart."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from standardwebhooks import Webhook, WebhookVerificationError

from boothgate.web.app import create_app
from tests.api.test_client_api import client, make_key, submit
from tests.conftest import ADMIN, Booth, ScriptedProvider, booth_settings
from tests.fakes.server import serve

FAST = (0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2)


@dataclass
class Receiver:
    """A client's webhook endpoint: verifies each delivery; answers 500 to the first `fail_first` deliveries."""

    secret: str = ""
    fail_first: int = 0
    answers: list[tuple[str, str, int]] = field(default_factory=list)  # (webhook-id, type, status)
    bad: list[str] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)  # of the deliveries answered 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            try:
                payload = Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError as exc:
                self.bad.append(str(exc))
                return Response(status_code=400)
            with self.lock:
                status = 500 if len(self.answers) < self.fail_first else 200
                self.answers.append((request.headers["webhook-id"], payload["type"], status))
                if status == 200:
                    self.payloads.append(payload)
            return Response(status_code=status)

        return app

    def delivered(self) -> list[str]:
        return [kind for _, kind, status in self.answers if status == 200]


async def until(check: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.05)


async def add_endpoint(booth: Booth, url: str, events: list[str]) -> httpx.Response:
    async with booth.api() as admin:
        return await admin.post("/api/webhooks", json={"url": url, "events": events})


async def test_private_targets_are_refused_without_the_setting(booth: Booth) -> None:
    for url in ("http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/x", "http://[::1]/x"):
        refused = await add_endpoint(booth, url, ["job.succeeded"])
        assert refused.status_code == 422 and "BOOTHGATE_WEBHOOKS_ALLOW_PRIVATE" in refused.text, url
    assert (await add_endpoint(booth, "ftp://example.com/x", ["job.succeeded"])).status_code == 422
    assert (await add_endpoint(booth, "http://127.0.0.1/x", ["job.exploded"])).status_code == 422


async def test_receiver_verifies_every_delivery_retry_after_500_and_each_event_once(booth_factory: Any) -> None:
    booth: Booth = booth_factory(webhooks_allow_private=True)
    booth.services.webhooks.schedule = FAST
    receiver = Receiver(fail_first=1)
    with serve(receiver.app()) as hook_url:
        created = await add_endpoint(booth, f"{hook_url}/hook", ["job.succeeded", "job.failed", "batch.completed"])
        assert created.status_code == 201, created.text
        endpoint = created.json()
        assert endpoint["secret"].startswith("whsec_")
        receiver.secret = endpoint["secret"]
        async with booth.api() as admin:
            listed = (await admin.get("/api/webhooks")).json()
        assert endpoint["secret"] not in str(listed)
        await booth.configure("gemini", 1)
        await booth.configure("gemini", 2, options={"mode": "fail"})
        key = await make_key(booth)
        async with client(booth, key["key"]) as api:
            assert (await submit(api, wait=20)).status_code == 200
            await until(lambda: "job.succeeded" in receiver.delivered())
            assert (await submit(api, slot="gemini/2", wait=20)).status_code == 502
            await until(lambda: "job.failed" in receiver.delivered())
        async with booth.api() as admin:
            test = await admin.post(f"/api/webhooks/{endpoint['id']}/test")
            assert test.status_code == 202
            await until(lambda: "webhook.test" in receiver.delivered())
            await asyncio.sleep(1.5)  # time for any wrong repeat to arrive
            deliveries = (await admin.get(f"/api/webhooks/{endpoint['id']}/deliveries")).json()
    assert receiver.bad == []
    # The first delivery was answered 500 and came again; after a 200 nothing comes twice.
    assert receiver.answers[0][2] == 500 and receiver.answers[1][0] == receiver.answers[0][0]
    ok = Counter(webhook_id for webhook_id, _, status in receiver.answers if status == 200)
    assert sorted(receiver.delivered()) == ["job.failed", "job.succeeded", "webhook.test"]
    assert set(ok.values()) == {1}
    first = next(d for d in deliveries if d["id"] == receiver.answers[0][0])
    assert [a["status"] for a in first["attempts"]] == [500, 200] and first["status"] == "delivered"
    assert all(d["status"] == "delivered" for d in deliveries)


async def test_deliveries_survive_a_restart(tmp_path: Path) -> None:
    settings = booth_settings(tmp_path, webhooks_allow_private=True)
    classes = {"gemini": ScriptedProvider}
    receiver = Receiver()
    with serve(receiver.app()) as hook_url:
        receiver_port = int(hook_url.rsplit(":", 1)[1])
    # The receiver is down: the first server queues the event and fails its first attempt, then stops.
    first = create_app(settings, classes)
    with serve(first) as url:
        first.state.services.webhooks.schedule = (2.0,) * 7
        async with httpx.AsyncClient(base_url=url, auth=ADMIN) as admin:
            endpoint = (
                await admin.post("/api/webhooks", json={"url": f"{hook_url}/hook", "events": ["batch.completed"]})
            ).json()
            receiver.secret = endpoint["secret"]
            await admin.post(f"/api/webhooks/{endpoint['id']}/test")
            await until(lambda: _attempts(first) > 0, timeout=10)
    second = create_app(settings, classes)
    with serve(receiver.app(), port=receiver_port), serve(second) as url:
        second.state.services.webhooks.schedule = FAST
        await until(lambda: receiver.delivered() == ["webhook.test"], timeout=30)
        async with httpx.AsyncClient(base_url=url, auth=ADMIN) as admin:
            deliveries = (await admin.get(f"/api/webhooks/{endpoint['id']}/deliveries")).json()
    assert deliveries[0]["status"] == "delivered" and deliveries[0]["attempts"][0]["status"] is None
    assert receiver.bad == []


def _attempts(app: Any) -> int:
    """Failed attempts the first server has logged (read through its own database, from the test thread)."""
    import sqlite3

    path = app.state.services.settings.data_dir / "boothgate.db"
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT attempts FROM webhook_deliveries").fetchall()
    return sum(1 for (attempts,) in rows if attempts and attempts != "[]")


async def test_budget_warning_is_told_once_per_threshold_crossing(booth_factory: Any) -> None:
    """A budget of 5 paid calls: the 4th call reaches 80 %, the 5th 100 % — one signed delivery each,
    however often the counters change after; a raised budget can be crossed, and told, again."""
    from tests.operator.test_events import create_event, photo, scripted, wait_settled

    booth: Booth = booth_factory(webhooks_allow_private=True)
    booth.services.webhooks.schedule = FAST
    receiver = Receiver()
    with serve(receiver.app()) as hook_url:
        created = await add_endpoint(booth, f"{hook_url}/hook", ["event.budget_warning"])
        receiver.secret = created.json()["secret"]
        await scripted(booth, 1)
        event = await create_event(booth, slots=["gemini/1"], budget={"max_paid_calls": 5})
        for n in range(1, 7):
            answer = await booth.post("gemini", 1, photo())
            assert answer.status == (200 if n <= 5 else 503)
            await wait_settled(booth, event["id"])
            if n == 3:
                await asyncio.sleep(0.5)  # time for a wrong early warning to arrive
                assert receiver.answers == []
        await until(lambda: len(receiver.delivered()) >= 2)
        # The task run again (a node died before finishing it) queues nothing new.
        again = await booth.services.webhooks.emit("event.budget_warning", {}, key=f"budget:{event['id']}:0.8:5:None")
        assert again == 0
        async with booth.api() as admin:
            raised = await admin.put(f"/api/events/{event['id']}", json={"budget": {"max_paid_calls": 7}})
            assert raised.status_code == 200, raised.text
        assert (await booth.post("gemini", 1, photo())).status == 200  # 6 of 7: 86 %
        await wait_settled(booth, event["id"])
        await until(lambda: len(receiver.delivered()) >= 3)
        await asyncio.sleep(1.0)  # time for any wrong repeat to arrive
    assert receiver.bad == []
    assert receiver.delivered() == ["event.budget_warning"] * 3
    assert len({webhook_id for webhook_id, _, _ in receiver.answers}) == 3
    told = [(p["data"]["event_id"], p["data"]["threshold"], p["data"]["max_paid_calls"]) for p in receiver.payloads]
    assert told == [(event["id"], 0.8, 5), (event["id"], 1.0, 5), (event["id"], 0.8, 7)]
    assert receiver.payloads[1]["data"]["spent"] is True
