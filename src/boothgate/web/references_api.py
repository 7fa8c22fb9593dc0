"""Several reference images per slot (issue 28): an ordered list up to the provider's documented limit.

    POST   /api/slots/{provider}/{number}/references           multipart `file`: append one
    GET    /api/slots/{provider}/{number}/references/{index}   the image ( /thumbnail: a preview)
    DELETE /api/slots/{provider}/{number}/references/{index}   remove one (the next move up)
    PUT    /api/slots/{provider}/{number}/references/order     {"order": [2, 0, 1]}: reorder

The slot's JSON lists `references` (index, url, sha256); the single-reference routes keep meaning "the first".
Each is sent after the guest's photo, in this order; running jobs hold the files they were admitted with.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response

from boothgate import errors
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
    return _file_response(services.slots.reference_path(slot, index))


@router.get("/slots/{provider}/{number}/references/{index}/thumbnail")
async def get_reference_thumbnail(provider: str, number: str, index: int, services: ServicesDep) -> Response:
    slot = await _slot(services, provider, number)
    return await _thumbnail(services, services.slots.reference_path(slot, index))
