"""The operator's side of the client API, behind the admin login: `/api/keys…` and `/api/webhooks…`.

A key is shown once, in the answer to its creation or rotation; a webhook's secret once, at creation.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from boothgate.api.webhooks import EVENTS, TargetRefused, public_delivery, public_endpoint
from boothgate.operator.api_keys import clean_scopes
from boothgate.web import pages
from boothgate.web.deps import ServicesDep, require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)], tags=["admin"])
page_router = APIRouter(dependencies=[Depends(require_admin)], include_in_schema=False)


@page_router.get("/clients", response_class=HTMLResponse)
async def clients_page(request: Request, services: ServicesDep) -> Response:
    return pages.render(request, services, "clients.html", active_page="clients", events=list(EVENTS))


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default_factory=list, max_length=200, description="gemini/1 or a tab; empty = all")
    rate_per_minute: int = Field(60, ge=1, le=100_000)
    photos_per_day: int = Field(1000, ge=1, le=10_000_000)


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: float = Field(3600, ge=0, le=30 * 86400)


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=len(EVENTS))


@router.get("/keys")
async def list_keys(services: ServicesDep) -> list[dict[str, Any]]:
    keys = services.api_keys
    rows = await keys.all()
    used = await keys.used_today([r.id for r in rows])
    return [keys.public(r, used.get(r.id, 0)) for r in rows]


@router.post("/keys", status_code=201)
async def create_key(body: NewKey, services: ServicesDep) -> dict[str, Any]:
    try:
        scopes = clean_scopes(body.scopes, services.registry.tabs)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    row, key = await services.api_keys.create(body.name, scopes, body.rate_per_minute, body.photos_per_day)
    return {**services.api_keys.public(row), "key": key}


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, services: ServicesDep) -> dict[str, Any]:
    if not await services.api_keys.revoke(key_id):
        raise HTTPException(404, "There is no such key.")
    row = await services.api_keys.get(key_id)
    assert row is not None
    return services.api_keys.public(row)


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, body: Rotation, services: ServicesDep) -> dict[str, Any]:
    rotated = await services.api_keys.rotate(key_id, body.grace_seconds)
    if rotated is None:
        raise HTTPException(404, "There is no such key (or it is revoked).")
    row, key = rotated
    return {**services.api_keys.public(row), "key": key}


@router.get("/webhooks")
async def list_webhooks(services: ServicesDep) -> dict[str, Any]:
    endpoints = await services.webhooks.endpoints()
    return {
        "events": list(EVENTS),
        "allow_private": services.settings.webhooks_allow_private,
        "endpoints": [public_endpoint(e) for e in endpoints],
    }


@router.post("/webhooks", status_code=201)
async def create_webhook(body: NewWebhook, services: ServicesDep) -> dict[str, Any]:
    try:
        endpoint, secret = await services.webhooks.create(body.url.strip(), body.events)
    except TargetRefused as exc:
        raise HTTPException(422, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {**public_endpoint(endpoint), "secret": secret}


@router.get("/webhooks/{endpoint_id}")
async def get_webhook(endpoint_id: str, services: ServicesDep) -> dict[str, Any]:
    endpoint = await services.webhooks.get(endpoint_id)
    if endpoint is None:
        raise HTTPException(404, "There is no such webhook.")
    return public_endpoint(endpoint)


@router.delete("/webhooks/{endpoint_id}")
async def delete_webhook(endpoint_id: str, services: ServicesDep) -> dict[str, Any]:
    if not await services.webhooks.delete(endpoint_id):
        raise HTTPException(404, "There is no such webhook.")
    return {"id": endpoint_id, "deleted": True}


@router.get("/webhooks/{endpoint_id}/deliveries")
async def webhook_deliveries(endpoint_id: str, services: ServicesDep) -> list[dict[str, Any]]:
    if await services.webhooks.get(endpoint_id) is None:
        raise HTTPException(404, "There is no such webhook.")
    return [public_delivery(d) for d in await services.webhooks.deliveries(endpoint_id)]


@router.post("/webhooks/{endpoint_id}/test", status_code=202)
async def test_webhook(endpoint_id: str, services: ServicesDep) -> dict[str, Any]:
    endpoint = await services.webhooks.get(endpoint_id)
    if endpoint is None:
        raise HTTPException(404, "There is no such webhook.")
    return public_delivery(await services.webhooks.send_test(endpoint))
