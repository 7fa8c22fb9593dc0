"""The JSON API behind Basic Auth: slots, references, Try it, statistics, jobs, providers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from boothgate import errors
from boothgate.booth.spine import BoothRequest
from boothgate.imaging.images import sniff
from boothgate.operator.slot_update import SlotOptionsInvalid, SlotUpdate
from boothgate.operator.slots import parse_number
from boothgate.records import stats
from boothgate.records.jobs import public_job
from boothgate.storage.models import Job, Slot
from boothgate.web.booth import body_stream
from boothgate.web.deps import ServicesDep, base_url, client_address, hidden_tabs, require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])

THUMBNAIL_PIXELS = 320
IMMUTABLE = {"Cache-Control": "private, max-age=86400"}


async def _slot(services: ServicesDep, provider: str, number: str) -> Slot:
    parsed = parse_number(number)
    slot = await services.slots.get(provider, parsed) if parsed is not None else None
    if slot is None:
        raise HTTPException(404, f"There is no slot {provider}/{number}.")
    return slot


# Shared with routers of their own (moderation masks).
slot_or_404 = _slot


@router.get("/slots")
async def list_slots(request: Request, services: ServicesDep, provider: str | None = None) -> list[dict[str, Any]]:
    base = base_url(request, services)
    return [services.slots.public(s, base) for s in await services.slots.find(provider)]


@router.get("/slots/{provider}/{number}")
async def get_slot(provider: str, number: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    return services.slots.public(await _slot(services, provider, number), base_url(request, services))


@router.put("/slots/{provider}/{number}")
async def update_slot(provider: str, number: str, change: SlotUpdate, request: Request, services: ServicesDep) -> Any:
    slot = await _slot(services, provider, number)
    try:
        updated = await services.slots.update(slot.provider, slot.number, change)
    except SlotOptionsInvalid as exc:
        return JSONResponse({"detail": exc.errors}, status_code=422)
    assert updated is not None
    return services.slots.public(updated, base_url(request, services))


async def _read_file_field(request: Request, services: ServicesDep, field: str = "file") -> bytes:
    limit = services.settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"The file is larger than {limit:,} bytes.")
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get(field)
    if upload is None or isinstance(upload, str):
        raise HTTPException(400, f"Send the image in the multipart field '{field}'.")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"The file is larger than {limit:,} bytes.")
    if not data:
        raise HTTPException(400, "The file is empty.")
    return data


read_file_field = _read_file_field


@router.put("/slots/{provider}/{number}/reference")
async def put_reference(provider: str, number: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    slot = await _slot(services, provider, number)
    data = await _read_file_field(request, services)
    try:
        updated = await services.slots.set_reference(slot.provider, slot.number, data)
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    assert updated is not None
    return services.slots.public(updated, base_url(request, services))


@router.delete("/slots/{provider}/{number}/reference")
async def delete_reference(provider: str, number: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    slot = await _slot(services, provider, number)
    updated = await services.slots.remove_reference(slot.provider, slot.number)
    assert updated is not None
    return services.slots.public(updated, base_url(request, services))


@router.get("/slots/{provider}/{number}/reference")
async def get_reference(provider: str, number: str, services: ServicesDep) -> Response:
    slot = await _slot(services, provider, number)
    await services.slots.fetch_files(slot)  # stored through another node (shared bucket)
    return _file_response(services.slots.reference_path(slot))


@router.get("/slots/{provider}/{number}/reference/thumbnail")
async def get_reference_thumbnail(provider: str, number: str, services: ServicesDep) -> Response:
    slot = await _slot(services, provider, number)
    await services.slots.fetch_files(slot)  # stored through another node (shared bucket)
    return await _thumbnail(services, services.slots.reference_path(slot))


# --- overlay (booth-links) ---------------------------------------------------------------------
@router.put("/slots/{provider}/{number}/overlay")
async def put_overlay(provider: str, number: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """A transparent PNG/WebP (frame, logo) laid over every result of the slot: 415/422 when it is not one."""
    slot = await _slot(services, provider, number)
    data = await _read_file_field(request, services)
    try:
        updated = await services.slots.set_overlay(slot.provider, slot.number, data)
    except errors.BoothError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    assert updated is not None
    return services.slots.public(updated, base_url(request, services))


@router.delete("/slots/{provider}/{number}/overlay")
async def delete_overlay(provider: str, number: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    slot = await _slot(services, provider, number)
    updated = await services.slots.remove_overlay(slot.provider, slot.number)
    assert updated is not None
    return services.slots.public(updated, base_url(request, services))


@router.get("/slots/{provider}/{number}/overlay")
async def get_overlay(provider: str, number: str, services: ServicesDep) -> Response:
    slot = await _slot(services, provider, number)
    await services.slots.fetch_files(slot)  # stored through another node (shared bucket)
    return _file_response(services.slots.overlay_file(slot))


@router.post("/slots/{provider}/{number}/try")
async def try_slot(
    provider: str, number: str, request: Request, services: ServicesDep, fallback_only: bool = False
) -> JSONResponse:
    """Run a photo through the slot exactly as a booth post would (no password, disabled slots too);
    `fallback_only` skips the slot's own provider and runs its fallback chain alone."""
    slot = await _slot(services, provider, number)
    answer = await services.ingest.handle(
        BoothRequest(
            provider=slot.provider,
            number=str(slot.number),
            content_type=request.headers.get("content-type"),
            content_length=None,
            header_password=None,
            body=body_stream(request),
            received_at=getattr(request.state, "received_at", time.monotonic()),
            client=client_address(request),
            source="try",
            fallback_only=fallback_only,
        )
    )
    job = await services.jobs.get(answer.job_id) if answer.job_id else None
    body: dict[str, Any] = {"status": answer.status, "error": answer.error}
    if job is not None:
        body["job"] = public_job(job)
    return JSONResponse(body)


@router.get("/stats")
async def get_stats(request: Request, services: ServicesDep) -> dict[str, Any]:
    hidden = hidden_tabs(request)  # tabs the operator hid from the bar are left out of the statistics too
    figures = await stats.compute(services.db, [name for name in services.registry.tabs if name not in hidden])
    names = {(slot.provider, slot.number): slot.name for slot in await services.slots.find()}
    for row in figures["slots"]:  # rows by the slot's name, as the operator knows it (issue 22)
        row["name"] = names.get((row["provider"], row["number"])) or ""
    return {
        "upload_password": services.credentials.upload_password,
        "upload_password_from_env": services.credentials.upload_password_from_env,
        **figures,
        "provider_errors": {
            name: provider.last_error
            for name in services.registry.tabs
            if (provider := services.registry.get(name)) is not None and provider.last_error
        },
        "storage": _storage(services),
        # Calls and failures per API key (masked names only), kept across restarts (issue 28).
        "keys": [row for row in await services.key_figures.listing() if row["provider"] not in hidden],
    }


def _storage(services: ServicesDep) -> dict[str, Any]:
    """Trash budget, job journal and unrecorded strangers (issue 14), with the warnings they raise."""
    trash = services.trash.public() if services.trash is not None else None
    journal = services.ingest.recorder.public()
    unrecorded = services.ingest.strangers.unrecorded
    warnings = [trash["warning"]] if trash and trash["warning"] else []
    if journal["pending"]:
        warnings.append("journal_pending")
    if unrecorded:
        warnings.append("unauthenticated_unrecorded")
    return {"trash": trash, "journal": journal, "unauthenticated_unrecorded": unrecorded, "warnings": warnings}


@router.post("/upload-password/rotate")
async def rotate_upload_password(services: ServicesDep) -> dict[str, str]:
    try:
        return {"upload_password": await services.credentials.rotate_upload()}
    except PermissionError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/providers")
async def list_providers(services: ServicesDep) -> list[dict[str, Any]]:
    described = []
    for name in services.registry.tabs:
        provider = services.registry.get(name)
        if provider is None:
            described.append({"name": name, "configured": False, "problem": "not available in this version"})
        else:
            described.append(provider.describe())
        described[-1].update(services.ingest.fallbacks.breaker.describe(name))  # offline detection
    return described


@router.get("/jobs")
async def list_jobs(
    services: ServicesDep,
    provider: str | None = None,
    slot: int | None = None,
    status: str | None = None,
    limit: int = 50,
    source: Literal["booth", "try", "rehearsal"] | None = None,
    event: int | None = Query(None, ge=1),
    before: str | None = Query(None, max_length=32, description="the last job id of the previous page"),
) -> list[dict[str, Any]]:
    """Newest first, a page at a time: the next page is `?before=<the last id>` (none left: fewer than
    `limit` came back)."""
    base = services.settings.public_base_url
    found = await services.jobs.find(provider, slot, status, limit, source, event_id=event, before=before)
    return [public_job(job, base) for job in found]


async def _job(services: ServicesDep, job_id: str) -> Job:
    job = await services.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "No such job.")
    return job


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, services: ServicesDep) -> dict[str, Any]:
    return public_job(await _job(services, job_id), services.settings.public_base_url)


def _photo_path(services: ServicesDep, job: Job) -> Path | None:
    relative = job.photo_path or job.trash_path
    if not relative:
        return None
    path = services.media.resolve(relative)
    return path if path.exists() and path.suffix != ".json" else None


def _result_path(services: ServicesDep, job: Job) -> Path | None:
    if not job.result_path:
        return None
    path = services.media.resolve(job.result_path)
    return path if path.exists() else None


async def _fetched(services: ServicesDep, job_id: str) -> Job:
    """The job, with its files brought from the shared bucket when another node wrote them (issue 27)."""
    job = await _job(services, job_id)
    for relative in (job.photo_path or job.trash_path, job.result_path, job.late_result_path):
        await services.media.fetch(relative)
    return job


@router.get("/jobs/{job_id}/photo")
async def job_photo(job_id: str, services: ServicesDep) -> Response:
    return _file_response(_photo_path(services, await _fetched(services, job_id)))


@router.get("/jobs/{job_id}/result")
async def job_result(job_id: str, services: ServicesDep) -> Response:
    return _file_response(_result_path(services, await _fetched(services, job_id)))


@router.get("/jobs/{job_id}/late")
async def job_late_result(job_id: str, services: ServicesDep) -> Response:
    """The late AI result (issue 30): what the guest's page shows once the slot's provider finished."""
    job = await _fetched(services, job_id)
    path = services.media.resolve(job.late_result_path) if job.late_result_path else None
    return _file_response(path if path is not None and path.exists() else None)


@router.get("/jobs/{job_id}/photo/thumbnail")
async def job_photo_thumbnail(job_id: str, services: ServicesDep) -> Response:
    return await _thumbnail(services, _photo_path(services, await _fetched(services, job_id)))


@router.get("/jobs/{job_id}/result/thumbnail")
async def job_result_thumbnail(job_id: str, services: ServicesDep) -> Response:
    return await _thumbnail(services, _result_path(services, await _fetched(services, job_id)))


def _file_response(path: Path | None) -> Response:
    if path is None:
        raise HTTPException(404, "The file is gone (deleted by retention or never stored).")
    data = path.read_bytes()
    kind = sniff(data[:16]) or "jpeg"
    return Response(data, media_type=f"image/{kind}", headers=IMMUTABLE)


async def _thumbnail(services: ServicesDep, path: Path | None) -> Response:
    if path is None:
        raise HTTPException(404, "The file is gone (deleted by retention or never stored).")
    try:
        data = await services.imaging.thumbnail(path, THUMBNAIL_PIXELS)
    except errors.BoothError as exc:
        raise HTTPException(422, exc.message) from exc
    return Response(data, media_type="image/jpeg", headers=IMMUTABLE)
