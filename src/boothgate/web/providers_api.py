"""Providers in the field (issue 28): each provider's keys (masked), the fields its models refused, and the
day its prices were checked; `DELETE` forgets a refused field so the next call sends it again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from boothgate.operator import model_lists
from boothgate.web.deps import ServicesDep, require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


@router.get("/providers/field")
async def providers_field(services: ServicesDep) -> list[dict[str, Any]]:
    return model_lists.field_report(services.registry)


@router.get("/providers/{provider}/refused")
async def list_refused(provider: str, services: ServicesDep) -> list[dict[str, Any]]:
    if not services.registry.knows(provider):
        raise HTTPException(404, f"No provider tab {provider!r}.")
    return [
        {"model": r.model, "field": r.field, "message": r.message}
        for r in services.registry.context.refusals.listing()
        if r.provider == provider
    ]


@router.delete("/providers/{provider}/refused")
async def forget_refused(provider: str, model: str, field: str, services: ServicesDep) -> dict[str, Any]:
    """Forget that `model` refused `field` (query parameters: model ids contain slashes)."""
    if not services.registry.knows(provider):
        raise HTTPException(404, f"No provider tab {provider!r}.")
    if not await services.registry.context.refusals.forget(provider, model, field):
        raise HTTPException(404, f"{provider} has no refused field {field!r} remembered for {model!r}.")
    return {"forgotten": {"provider": provider, "model": model, "field": field}}
