"""The built-in backgrounds: list them, show them, and make one a slot's reference."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel

from boothgate import errors
from boothgate.local import backdrops
from boothgate.web.api import slot_or_404
from boothgate.web.deps import ServicesDep, base_url, require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])

PREVIEW = (360, 240)
FULL = (3000, 2000)  # the offline tab's default result size, 3:2


@functools.lru_cache(maxsize=16)
def _jpeg(name: str, width: int, height: int) -> bytes:
    import cv2

    rgb = backdrops.make(name, width, height)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return bytes(data)


def _known(name: str) -> str:
    if name not in backdrops.BY_NAME:
        raise HTTPException(404, f"No built-in background is called {name!r}.")
    return name


@router.get("/backdrops")
async def list_backdrops() -> list[dict[str, Any]]:
    return [
        {"name": b.name, "label": b.label, "preview_url": f"/api/backdrops/{b.name}/preview.jpg"}
        for b in backdrops.BACKDROPS
    ]


@router.get("/backdrops/{name}/preview.jpg")
async def preview(name: str) -> Response:
    data = await asyncio.to_thread(_jpeg, _known(name), *PREVIEW)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


class UseBackdrop(BaseModel):
    name: str


@router.put("/slots/{provider}/{number}/reference/backdrop")
async def use_backdrop(
    provider: str, number: str, body: UseBackdrop, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """Make a built-in background the slot's reference (as if the operator had uploaded it)."""
    slot = await slot_or_404(services, provider, number)
    data = await asyncio.to_thread(_jpeg, _known(body.name), *FULL)
    try:
        updated = await services.slots.set_reference(slot.provider, slot.number, data)
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    assert updated is not None
    return services.slots.public(updated, base_url(request, services))
