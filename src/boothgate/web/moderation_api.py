"""The content check's admin API: its state, and the mask images (global and per slot)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from boothgate import errors
from boothgate.imaging import mask
from boothgate.run.moderation import Moderation, slot_mask_name
from boothgate.runtime import Services
from boothgate.web.api import read_file_field, slot_or_404
from boothgate.web.deps import ServicesDep, require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])

PREVIEW_SIZE = (360, 240)  # a 3:2 photo, the shape most booths send


def _moderation(services: Services) -> Moderation:
    if services.moderation is None:
        raise HTTPException(503, "The content check is not running in this server.")
    return services.moderation


@router.get("/moderation")
async def state(services: ServicesDep) -> dict[str, Any]:
    moderation = _moderation(services)
    return {
        "available": moderation.available,
        "problem": moderation.problem,
        "global_mask": moderation.find("global") is not None,
    }


async def _store(services: Services, request: Request, name: str) -> dict[str, Any]:
    moderation = _moderation(services)
    data = await read_file_field(request, services)
    try:
        await services.imaging.inspect(data)  # type from bytes, pixel cap
        await services.imaging.prepare(data, 250_000)  # a real decode: refuses truncated files
        await asyncio.to_thread(moderation.store, name, data)  # with a shared bucket, a put there too
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    except OSError as exc:
        raise HTTPException(507, f"Could not store the mask image: {exc.strerror or exc}.") from exc
    return {"mask": True}


async def _preview(services: Services, name: str | None) -> Response:
    moderation = _moderation(services)
    data = await asyncio.to_thread(moderation.read_first, [name, "global"] if name else ["global"])
    preview = await services.imaging.workers.run(None, mask.build, *PREVIEW_SIZE, max(PREVIEW_SIZE), data, 80)
    return Response(preview, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.put("/moderation/mask")
async def put_global_mask(request: Request, services: ServicesDep) -> dict[str, Any]:
    return await _store(services, request, "global")


@router.delete("/moderation/mask")
async def delete_global_mask(services: ServicesDep) -> dict[str, Any]:
    _moderation(services).remove("global")
    return {"mask": False}


@router.get("/moderation/mask")
async def preview_global_mask(services: ServicesDep) -> Response:
    return await _preview(services, None)


@router.put("/slots/{provider}/{number}/mask")
async def put_slot_mask(provider: str, number: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    slot = await slot_or_404(services, provider, number)
    return await _store(services, request, slot_mask_name(slot.provider, slot.number))


@router.delete("/slots/{provider}/{number}/mask")
async def delete_slot_mask(provider: str, number: str, services: ServicesDep) -> dict[str, Any]:
    slot = await slot_or_404(services, provider, number)
    _moderation(services).remove(slot_mask_name(slot.provider, slot.number))
    return {"mask": False}


@router.get("/slots/{provider}/{number}/mask")
async def preview_slot_mask(provider: str, number: str, services: ServicesDep) -> Response:
    """What a caught photo of this slot answers (the slot's mask, else the global one, else built-in)."""
    slot = await slot_or_404(services, provider, number)
    return await _preview(services, slot_mask_name(slot.provider, slot.number))
