"""Outgoing webhooks, signed per the Standard Webhooks specification (https://www.standardwebhooks.com/).

An endpoint has a URL, the events it wants and a secret `whsec_<base64>` (shown once). Each event becomes
one delivery row per endpoint (its id is the `webhook-id`) and one durable task (`work/`, kind
`api.webhook`, idempotency key = the delivery id) in the same transaction. The task POSTs the JSON body
`{"type", "timestamp", "data"}` with `webhook-id`, `webhook-timestamp` and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, made by the `standardwebhooks` reference library);
a 2xx ends it, anything else is tried again on the schedule below (about a day, as the specification
suggests), each attempt logged in the delivery row. A delivery already answered 2xx is never sent again.

No SSRF into the operator's LAN: the URL must be http(s), and its host — as resolved at creation and again
before every attempt — must be a public address, unless `webhooks_allow_private` is set. Redirects are not
followed. (A DNS answer that changes between the check and the connection is not pinned: a residual
risk, said in docs/client-api.md.)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from standardwebhooks import Webhook

from boothgate.storage.db import Database
from boothgate.storage.models import WebhookDelivery, WebhookEndpoint, utcnow
from boothgate.work import Context, Permanent, RetryLater, TaskQueue

log = logging.getLogger("boothgate.webhooks")

KIND = "api.webhook"
EVENTS = ("job.succeeded", "job.failed", "job.delivered_late", "batch.completed", "event.budget_warning")
TEST_EVENT = "webhook.test"
# Seconds before each retry after a failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (~27.6 h in all).
SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
TIMEOUT_SECONDS = 15.0
MAX_URL = 2000
KEEP_ATTEMPTS = 20


class TargetRefused(ValueError):
    """The URL is not one webhooks may post to (422)."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
    )


async def check_target(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL:
        raise TargetRefused("The webhook URL must be an http:// or https:// address.")
    if parts.username or parts.password:
        raise TargetRefused("The webhook URL may not carry a user name or password.")
    if allow_private:
        return
    try:
        literal: str | None = str(ipaddress.ip_address(parts.hostname))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = {literal}
    else:
        addresses = await _resolve(parts.hostname, parts.port)
    if not addresses or not all(_public(a) for a in addresses):
        raise TargetRefused(
            f"{parts.hostname} is a loopback or private address; set BOOTHGATE_WEBHOOKS_ALLOW_PRIVATE=true to allow it."
        )


async def _resolve(host: str, port: int | None) -> set[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"The webhook host {host} cannot be resolved ({exc}).") from None
    return {str(info[4][0]).split("%", 1)[0] for info in infos}


def public_endpoint(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events or []),
        "created_at": endpoint.created_at.isoformat() if endpoint.created_at else None,
        "secret_hint": endpoint.secret[:10] + "…",
    }


def public_delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event": delivery.event,
        "status": delivery.status,
        "created_at": delivery.created_at.isoformat() if delivery.created_at else None,
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        "attempts": list(delivery.attempts or []),
    }


@dataclass
class Webhooks:
    db: Database
    queue: TaskQueue
    allow_private: Callable[[], bool]
    schedule: tuple[float, ...] = SCHEDULE
    http: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)
    )

    # --- endpoints --------------------------------------------------------------------------
    async def create(self, url: str, events: list[str]) -> tuple[WebhookEndpoint, str]:
        unknown = [e for e in events if e not in EVENTS]
        if unknown or not events:
            raise ValueError(f"Choose events among {', '.join(EVENTS)}.")
        await check_target(url, self.allow_private())
        secret = new_secret()
        endpoint = WebhookEndpoint(
            id=uuid.uuid4().hex, url=url, events=sorted(set(events)), secret=secret, created_at=utcnow()
        )
        async with self.db.write() as session:
            session.add(endpoint)
        return endpoint, secret

    async def endpoints(self) -> list[WebhookEndpoint]:
        async with self.db.read() as session:
            query = (
                select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None)).order_by(WebhookEndpoint.created_at)
            )
            return list((await session.scalars(query)).all())

    async def get(self, endpoint_id: str) -> WebhookEndpoint | None:
        async with self.db.read() as session:
            endpoint = await session.get(WebhookEndpoint, endpoint_id)
        return endpoint if endpoint is not None and endpoint.deleted_at is None else None

    async def delete(self, endpoint_id: str) -> bool:
        async with self.db.write() as session:
            endpoint = await session.get(WebhookEndpoint, endpoint_id)
            if endpoint is None or endpoint.deleted_at is not None:
                return False
            endpoint.deleted_at = utcnow()
        return True

    async def deliveries(self, endpoint_id: str, limit: int = 100) -> list[WebhookDelivery]:
        async with self.db.read() as session:
            query = (
                select(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == endpoint_id)
                .order_by(WebhookDelivery.created_at.desc())
                .limit(max(1, min(limit, 500)))
            )
            return list((await session.scalars(query)).all())

    # --- events -----------------------------------------------------------------------------
    async def emit(self, event: str, data: dict[str, Any], key: str | None = None) -> int:
        """One delivery per endpoint that wants `event`; returns how many were queued.

        With `key` (the durable task that emits it), the delivery ids follow from the key and the endpoint:
        emitting the same key again (that task run a second time after a restart) queues nothing new."""
        targets = [e for e in await self.endpoints() if event in (e.events or [])]
        return await self._queue(targets, event, data, key)

    async def budget_warning(self, context: Context) -> None:
        """The durable task operator/budget.py enqueues once per threshold crossing of an event's budget."""
        data = context.payload.get("data")
        await self.emit("event.budget_warning", dict(data) if isinstance(data, dict) else {}, key=context.task.key)

    async def send_test(self, endpoint: WebhookEndpoint) -> WebhookDelivery:
        await self._queue([endpoint], TEST_EVENT, {"message": "A test event from boothgate."})
        return (await self.deliveries(endpoint.id, 1))[0]

    async def _queue(
        self, targets: list[WebhookEndpoint], event: str, data: dict[str, Any], key: str | None = None
    ) -> int:
        if not targets:
            return 0
        now = utcnow()
        queued = 0
        async with self.db.write() as session:
            for endpoint in targets:
                if key is None:
                    delivery_id = "msg_" + uuid.uuid4().hex
                else:
                    delivery_id = "msg_" + hashlib.sha256(f"{key}\n{endpoint.id}".encode()).hexdigest()[:32]
                    if await session.get(WebhookDelivery, delivery_id) is not None:
                        continue
                queued += 1
                body = {"type": event, "timestamp": now.isoformat(), "data": data}
                session.add(
                    WebhookDelivery(
                        id=delivery_id, endpoint_id=endpoint.id, event=event, payload=body, status="pending",
                        attempts=[], created_at=now,
                    )
                )  # fmt: skip
                await self.queue.enqueue(
                    KIND, delivery_id, {"delivery": delivery_id}, session=session, max_attempts=len(self.schedule) + 1
                )
        self.queue.wake()
        return queued

    # --- delivering (the durable task) --------------------------------------------------------
    async def deliver(self, context: Context) -> None:
        delivery_id = str(context.payload["delivery"])
        async with self.db.read() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id) if delivery is not None else None
        if delivery is None or delivery.status == "delivered":
            return  # already answered 2xx (a node died before finishing the task): never twice
        if endpoint is None or endpoint.deleted_at is not None:
            await self._record(delivery_id, None, "endpoint deleted", 0.0, final="failed")
            return
        attempt = context.task.attempts
        last = attempt >= len(self.schedule) + 1
        try:
            await check_target(endpoint.url, self.allow_private())
        except TargetRefused as exc:
            await self._record(delivery_id, None, str(exc), 0.0, final="failed")
            raise Permanent(str(exc)) from None
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "boothgate-webhooks",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(endpoint.secret).sign(delivery.id, now, body),
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            response = await self.http.post(endpoint.url, content=body.encode(), headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        seconds = round(time.monotonic() - started, 3)
        if status is not None and 200 <= status < 300:
            await self._record(delivery_id, status, None, seconds, final="delivered")
            return
        await self._record(delivery_id, status, error or f"HTTP {status}", seconds, final="failed" if last else None)
        if last:
            raise Permanent(f"no 2xx after {attempt} attempts")
        raise RetryLater(error or f"HTTP {status}", self.schedule[min(attempt - 1, len(self.schedule) - 1)])

    async def _record(
        self, delivery_id: str, status: int | None, error: str | None, seconds: float, final: str | None
    ) -> None:
        async with self.db.write() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            attempts = list(delivery.attempts or [])
            attempts.append({"at": utcnow().isoformat(), "status": status, "error": error, "seconds": seconds})
            delivery.attempts = attempts[-KEEP_ATTEMPTS:]
            if final is not None:
                delivery.status = final
            if final == "delivered":
                delivery.delivered_at = utcnow()
        log.info(
            "webhook delivery=%s status=%s %s", delivery_id, status if status is not None else "-", final or "retry"
        )

    async def aclose(self) -> None:
        await self.http.aclose()
