"""Several reference images per slot (issue 28): an ordered list up to the provider's documented limit.

    POST   /api/slots/{provider}/{number}/references           multipart `file`: append one
    GET    /api/slots/{provider}/{number}/references/{index}   the image ( /thumbnail: a preview)
    DELETE /api/slots/{provider}/{number}/references/{index}   remove one (the next move up)
    PUT    /api/slots/{provider}/{number}/references/order     {"order": [2, 0, 1]}: reorder

Making a reference from a prompt (paid, so the price comes first):
    GET    /api/slots/{provider}/{number}/references/generate  {"via", "cost_usd", "tabs"}: what it would cost
    POST   /api/slots/{provider}/{number}/references/generate  {"prompt", "via"?} → {"token", "preview_url", ...}
    GET    /api/slots/{provider}/{number}/references/drafts/{token}   the draft image
    POST   /api/slots/{provider}/{number}/references/drafts/{token}   confirm: stored as the next reference

The slot's JSON lists `references` (index, url, sha256); the single-reference routes keep meaning "the first".
Each is sent after the guest's photo, in this order; running jobs hold the files they were admitted with.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response

from boothgate import errors
from boothgate.deadline import Deadline
from boothgate.operator.reference_drafts import Draft
from boothgate.providers.base import Provider
from boothgate.records import operator_spend
from boothgate.storage.models import Slot
from boothgate.web.api import _file_response, _slot, _thumbnail, read_file_field
from boothgate.web.deps import ServicesDep, base_url, require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


def _answer(services: ServicesDep, request: Request, slot: Slot | None) -> dict[str, Any]:
    assert slot is not None
    return services.slots.public(slot, base_url(request, services))


@router.post("/slots/{provider}/{number}/references")
async def add_reference(provider: str, number: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    slot = await _slot(services, provider, number)
    data = await read_file_field(request, services)
    try:
        updated = await services.slots.add_reference(slot.provider, slot.number, data)
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    return _answer(services, request, updated)


def _generators(services: ServicesDep) -> list[str]:
    tabs = []
    for name in services.registry.tabs:
        provider = services.registry.get(name)
        if provider is not None and provider.can_generate and provider.problem() is None:
            tabs.append(name)
    return tabs


def _via(services: ServicesDep, slot_provider: str, via: str | None) -> Provider:
    tabs = _generators(services)
    name = via or (slot_provider if slot_provider in tabs else (tabs[0] if tabs else None))
    if name is None or name not in tabs:
        raise HTTPException(409, "No tab that can make an image from a prompt is set up (Gemini with a key can).")
    provider = services.registry.get(name)
    assert provider is not None
    return provider


@router.get("/slots/{provider}/{number}/references/generate")
async def generate_price(provider: str, number: str, services: ServicesDep, via: str | None = None) -> dict[str, Any]:
    slot = await _slot(services, provider, number)
    maker = _via(services, slot.provider, via)
    return {"via": maker.name, "cost_usd": maker.generate_cost_usd(), "tabs": _generators(services)}


@router.post("/slots/{provider}/{number}/references/generate")
async def generate_reference(
    provider: str,
    number: str,
    services: ServicesDep,
    prompt: str = Body(..., embed=True, min_length=3, max_length=2000),
    via: str | None = Body(None, embed=True, max_length=40),
) -> dict[str, Any]:
    """Make one image from `prompt` (a paid call) and keep it as a draft until it is confirmed."""
    slot = await _slot(services, provider, number)
    maker = _via(services, slot.provider, via)
    try:
        result = await maker.generate(prompt, Deadline.after(services.settings.deadline_seconds))
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    cost = result.notes.get("cost_usd", maker.generate_cost_usd())
    # Paid whether or not the operator keeps it: counted in the statistics now (issue 28).
    await operator_spend.record(services.db, maker.name, operator_spend.REFERENCE_FROM_PROMPT, cost)
    token = services.drafts.put(Draft(slot.provider, slot.number, result.data, result.mime, maker.name, cost))
    return {
        "token": token,
        "via": maker.name,
        "cost_usd": cost,
        "preview_url": f"/api/slots/{slot.provider}/{slot.number}/references/drafts/{token}",
    }


@router.get("/slots/{provider}/{number}/references/drafts/{token}")
async def get_draft(provider: str, number: str, token: str, services: ServicesDep) -> Response:
    slot = await _slot(services, provider, number)
    draft = services.drafts.get(token, slot.provider, slot.number)
    if draft is None:
        raise HTTPException(404, "No such draft (drafts are kept for 15 minutes).")
    return Response(draft.data, media_type=draft.mime, headers={"Cache-Control": "no-store"})


@router.post("/slots/{provider}/{number}/references/drafts/{token}")
async def confirm_draft(
    provider: str, number: str, token: str, request: Request, services: ServicesDep
) -> dict[str, Any]:
    slot = await _slot(services, provider, number)
    draft = services.drafts.take(token, slot.provider, slot.number)
    if draft is None:
        raise HTTPException(404, "No such draft (drafts are kept for 15 minutes).")
    try:
        updated = await services.slots.add_reference(slot.provider, slot.number, draft.data)
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    return _answer(services, request, updated)


@router.put("/slots/{provider}/{number}/references/order")
async def reorder_references(
    provider: str,
    number: str,
    request: Request,
    services: ServicesDep,
    order: list[int] = Body(..., embed=True, max_length=64),  # noqa: B008
) -> dict[str, Any]:
    slot = await _slot(services, provider, number)
    try:
        updated = await services.slots.reorder_references(slot.provider, slot.number, order)
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    return _answer(services, request, updated)


@router.delete("/slots/{provider}/{number}/references/{index}")
async def delete_reference(
    provider: str, number: str, index: int, request: Request, services: ServicesDep
) -> dict[str, Any]:
    slot = await _slot(services, provider, number)
    try:
        updated = await services.slots.remove_reference_at(slot.provider, slot.number, index)
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    return _answer(services, request, updated)


@router.get("/slots/{provider}/{number}/references/{index}")
async def get_reference(provider: str, number: str, index: int, services: ServicesDep) -> Response:
    slot = await _slot(services, provider, number)
    await services.slots.fetch_files(slot)  # stored through another node (shared bucket)
    return _file_response(services.slots.reference_path(slot, index))


@router.get("/slots/{provider}/{number}/references/{index}/thumbnail")
async def get_reference_thumbnail(provider: str, number: str, index: int, services: ServicesDep) -> Response:
    slot = await _slot(services, provider, number)
    await services.slots.fetch_files(slot)  # stored through another node (shared bucket)
    return await _thumbnail(services, services.slots.reference_path(slot, index))
