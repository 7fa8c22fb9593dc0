"""The client API's batch routes (`/api/v1/batches…`): many photos for one slot, their progress, their
results as one ZIP, cancelling; included in `v1.py`'s router."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from boothgate.api.batch_intake import Incoming
from boothgate.api.batches import public_batch
from boothgate.api.jobs import parse_slot
from boothgate.web.booth import content_length
from boothgate.web.deps import ServicesDep
from boothgate.web.v1_base import KeyDep, error_response
from boothgate.web.v1_docs import BATCH_EXAMPLE, ERRORS, multipart_body, shown

# Its routes take `v1.py`'s prefix and tag when that router includes this one.
router = APIRouter()


@router.post(
    "/batches",
    summary="Process many photos for one slot",
    description="Up to N files in `files`, or one ZIP of photos. A ZIP bomb, an unsafe (`../`, absolute) or "
    "nested entry, or too many or too large photos: 422 and nothing is kept. Booths come first: batch photos "
    "use only spare capacity.",
    status_code=202,
    responses={
        202: shown(BATCH_EXAMPLE | {"status": "queued", "done": 0, "failed": 0, "pending": 40}, "Accepted"),
        422: shown(
            {"error": "zip_unsafe_path", "message": "The archive has an unsafe entry name: '../evil.jpg'."}, "Refused"
        ),
        **ERRORS,
    },
    openapi_extra=multipart_body(
        {
            "files": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "Photos, or one ZIP.",
            },
            "slot": {"type": "string", "example": "gemini/3"},
        },
        ["files", "slot"],
    ),
)
async def create_batch(request: Request, caller: KeyDep, services: ServicesDep) -> Response:
    limits = services.batches.limits
    length = content_length(request)
    if length is None:
        return error_response(411, "length_required", "Send the batch with a Content-Length.")
    if length > limits.max_total_bytes + 1024 * 1024:
        return error_response(413, "too_large", f"A batch is at most {limits.max_total_bytes:,} bytes.")
    async with request.form(max_files=limits.max_files + 1, max_fields=100, max_part_size=64 * 1024) as form:
        provider, number = parse_slot(str(form.get("slot") or ""), services.registry)
        uploads = [f for name in ("files", "file", "zip") for f in form.getlist(name) if not isinstance(f, str)]
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str) and k not in ("slot",)}
        batch = await services.batches.create(
            caller, provider, number, [Incoming(u.filename or "photo", u.file) for u in uploads], fields
        )
    headers = {**getattr(request.state, "rate_headers", {}), "Location": f"/api/v1/batches/{batch.id}"}
    return JSONResponse(public_batch(batch), status_code=202, headers=headers)


@router.get(
    "/batches/{batch_id}",
    summary="A batch's progress",
    responses={200: shown(BATCH_EXAMPLE, "The batch"), **ERRORS},
)
async def get_batch(batch_id: str, caller: KeyDep, services: ServicesDep) -> Any:
    batch = await services.batches.get(batch_id, caller)
    return public_batch(batch) if batch is not None else error_response(404, "not_found", "There is no such batch.")


@router.get(
    "/batches/{batch_id}/zip",
    summary="The results and manifest.json as one ZIP (streamed)",
    description="`results/<input name>.<ext>` for each photo that succeeded, and `manifest.json`: "
    "`{batch, items: [{input, status, result, job_id, error, message}]}`. May be fetched while the batch runs.",
    responses={200: {"description": "A ZIP", "content": {"application/zip": {}}}, **ERRORS},
)
async def batch_zip(batch_id: str, caller: KeyDep, services: ServicesDep) -> Response:
    batch = await services.batches.get(batch_id, caller)
    if batch is None:
        return error_response(404, "not_found", "There is no such batch.")
    return StreamingResponse(
        services.batches.zip_stream(batch),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.zip"'},
    )


@router.delete(
    "/batches/{batch_id}",
    summary="Cancel a batch",
    responses={200: shown(BATCH_EXAMPLE | {"status": "cancelled"}, "The batch"), **ERRORS},
)
async def cancel_batch(batch_id: str, caller: KeyDep, services: ServicesDep) -> Any:
    batch = await services.batches.get(batch_id, caller)
    if batch is None:
        return error_response(404, "not_found", "There is no such batch.")
    return public_batch(await services.batches.cancel(batch))
