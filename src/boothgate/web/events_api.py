"""Events' JSON API behind Basic Auth (mechanics: operator/events.py, budget.py, presets.py; records/export.py).

GET/POST /api/events · GET/PUT/DELETE /api/events/{id} · POST /api/events/{id}/end
GET /api/events/{id}/stats · GET /api/events/{id}/export.zip (+ /export/progress)
GET/POST /api/events/{id}/preset · GET/POST /api/presets
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from boothgate import errors
from boothgate.operator import budget as budgets
from boothgate.operator import preset_mapping
from boothgate.operator.events import EventChange, EventInvalid
from boothgate.operator.presets import MAX_FILE_BYTES, PresetInvalid, Presets
from boothgate.records import stats
from boothgate.runtime import Services
from boothgate.storage.models import Event
from boothgate.web.deps import ServicesDep, base_url, require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


def _public(services: Services, request: Request, event: Event) -> dict[str, Any]:
    settings = services.settings
    body = services.events.public(event, base_url(request, services), settings.retention_days)
    body["budget"] = budgets.state(event, settings)
    body["export"] = services.exports.progress(event.id)
    return body


async def _event(services: Services, event_id: int, include_deleted: bool = False) -> Event:
    event = await services.events.get(event_id, include_deleted=include_deleted)
    if event is None:
        raise HTTPException(404, f"There is no event {event_id}.")
    return event


def _invalid(exc: EventInvalid) -> JSONResponse:
    return JSONResponse({"detail": exc.detail()}, status_code=exc.status)


@router.get("/events")
async def list_events(request: Request, services: ServicesDep, deleted: bool = False) -> list[dict[str, Any]]:
    events = await services.events.find(include_deleted=deleted)
    shown = [_public(services, request, e) for e in events]
    order = {"running": 0, "upcoming": 1, "ended": 2, "deleted": 3}
    return sorted(shown, key=lambda e: order[e["state"]])  # the running events first


@router.post("/events", status_code=201)
async def create_event(change: EventChange, request: Request, services: ServicesDep) -> Any:
    try:
        event = await services.events.create(change)
    except EventInvalid as exc:
        return _invalid(exc)
    return _public(services, request, event)


@router.get("/events/{event_id}")
async def get_event(event_id: int, request: Request, services: ServicesDep) -> dict[str, Any]:
    return _public(services, request, await _event(services, event_id, include_deleted=True))


@router.put("/events/{event_id}")
async def update_event(event_id: int, change: EventChange, request: Request, services: ServicesDep) -> Any:
    try:
        event = await services.events.update(event_id, change)
    except EventInvalid as exc:
        return _invalid(exc)
    if event is None:
        raise HTTPException(404, f"There is no event {event_id}.")
    return _public(services, request, event)


@router.post("/events/{event_id}/end")
async def end_event(event_id: int, request: Request, services: ServicesDep) -> dict[str, Any]:
    event = await services.events.end(event_id)
    if event is None:
        raise HTTPException(404, f"There is no event {event_id}.")
    return _public(services, request, event)


@router.delete("/events/{event_id}")
async def delete_event(event_id: int, services: ServicesDep) -> dict[str, Any]:
    if not await services.events.delete(event_id):
        raise HTTPException(404, f"There is no event {event_id}.")
    return {"deleted": True, "id": event_id}


@router.get("/events/{event_id}/stats")
async def event_stats(event_id: int, services: ServicesDep) -> dict[str, Any]:
    """Kept after the event is deleted: the jobs keep their event."""
    event = await _event(services, event_id, include_deleted=True)
    settings = services.settings
    body = await stats.for_event(services.db, event.id)
    state = budgets.state(event, settings)
    body.update(
        {
            "event_id": event.id,
            "name": event.name,
            "paid_calls": event.spent_calls,
            "currency": settings.cost_currency,
            "cost": round(budgets.to_currency(body["cost_usd"], settings), 4),
            "cost_by_provider": {
                k: round(budgets.to_currency(v, settings), 4) for k, v in body["cost_usd_by_provider"].items()
            },
            "budget": state,
        }
    )
    return body


@router.get("/events/{event_id}/export.zip")
async def export_event(event_id: int, services: ServicesDep) -> StreamingResponse:
    event = await _event(services, event_id, include_deleted=True)
    ids, files = await services.exports.plan(event.id)
    filename = _filename(event.name) + ".zip"
    return StreamingResponse(
        services.exports.stream(event.id, ids, files),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Export-Files": str(files),
            "X-Export-Jobs": str(len(ids)),
        },
    )


@router.get("/events/{event_id}/export/progress")
async def export_progress(event_id: int, services: ServicesDep) -> dict[str, Any]:
    await _event(services, event_id, include_deleted=True)
    return {"exports": services.exports.progress(event_id)}


# --- presets ----------------------------------------------------------------------------------
def _presets(services: Services) -> Presets:
    return Presets(services.slots, services.moderation)


def _download(preset: dict[str, Any], name: str) -> Response:
    data = json.dumps(preset, ensure_ascii=False, indent=1).encode("utf-8")
    return Response(
        data,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{_filename(name or "preset")}.boothgate-preset.json"',
            "Cache-Control": "no-store",
        },
    )


async def _read_preset(request: Request) -> bytes:
    """The file from a multipart field `file` or the raw body; never more than the limit is read."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FILE_BYTES + 64 * 1024:
        raise HTTPException(413, f"The preset file is larger than {MAX_FILE_BYTES:,} bytes.")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5, max_part_size=MAX_FILE_BYTES + 1)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "Send the preset in the multipart field 'file'.")
        data = await upload.read(MAX_FILE_BYTES + 1)
    else:
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise HTTPException(413, f"The preset file is larger than {MAX_FILE_BYTES:,} bytes.")
            parts.append(chunk)
        data = b"".join(parts)
    if len(data) > MAX_FILE_BYTES:
        raise HTTPException(413, f"The preset file is larger than {MAX_FILE_BYTES:,} bytes.")
    if not data:
        raise HTTPException(422, "The preset file is empty.")
    return data


async def _import(services: Services, request: Request, event: Event | None) -> Any:
    """`?mapping=gemini/1:gemini/5,…` places slots by hand (operator/preset_mapping.py says the rule);
    `?dry_run=true` answers where every slot would go and what it overwrites, changing nothing."""
    presets = _presets(services)
    params = request.query_params
    try:
        mapping = preset_mapping.parse_mapping(params.get("mapping"), services.slots.registry.tabs)
    except preset_mapping.MappingInvalid as exc:
        return JSONResponse({"detail": [{"loc": ["mapping"], "msg": exc.message, "type": "value_error"}]}, 422)
    try:
        preset = await presets.load(await _read_preset(request))
        ready = await presets.check(preset, list(event.slots or []) if event is not None else None, mapping)
    except PresetInvalid as exc:
        return JSONResponse({"detail": exc.errors}, status_code=exc.status)
    keys = [f"{r.provider}/{r.number}" for r in ready]
    placed = [{"from": r.source, "to": f"{r.provider}/{r.number}"} for r in ready]
    if event is not None:  # the slots join the event: checked before anything changes
        wanted = list(dict.fromkeys([*(event.slots or []), *keys]))
        try:
            await services.events.check_slots(event.id, wanted)
        except EventInvalid as exc:
            return _invalid(exc)
    if params.get("dry_run", "").lower() in ("1", "true", "yes"):
        overwrites = []
        for r in ready:
            slot = await services.slots.get(r.provider, r.number)
            if slot is not None:
                overwrites.append({"slot": f"{r.provider}/{r.number}", "name": slot.name, "enabled": slot.enabled})
        return {"dry_run": True, "mapping": placed, "overwrites": overwrites, "name": preset.name}
    try:
        imported = await presets.apply(ready)
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    if event is not None:
        try:
            await services.events.update(event.id, EventChange.model_validate({"slots": wanted}))
        except EventInvalid as exc:
            return _invalid(exc)
    return {"imported": imported, "mapping": placed, "event_id": event.id if event is not None else None}


@router.get("/events/{event_id}/preset")
async def export_event_preset(event_id: int, services: ServicesDep) -> Response:
    event = await _event(services, event_id, include_deleted=True)
    return _download(await _presets(services).export(list(event.slots or []), event.name), event.name)


@router.post("/events/{event_id}/preset")
async def import_event_preset(event_id: int, request: Request, services: ServicesDep) -> Any:
    return await _import(services, request, await _event(services, event_id))


@router.get("/presets")
async def export_preset(services: ServicesDep, slots: str | None = None, name: str = "") -> Response:
    """`?slots=gemini/1,local/2`; without it, every slot that is switched on."""
    if slots:
        keys = [s.strip() for s in slots.split(",") if s.strip()][:200]
    else:
        keys = [f"{s.provider}/{s.number}" for s in await services.slots.find() if s.enabled]
    return _download(await _presets(services).export(keys, name[:200]), name[:200])


@router.post("/presets")
async def import_preset(request: Request, services: ServicesDep) -> Any:
    return await _import(services, request, None)


def _filename(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned[:80] or "event"
