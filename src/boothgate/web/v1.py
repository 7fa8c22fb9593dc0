"""The client API, version 1 (`/api/v1/…`, key in `X-API-Key`): thin routes over `api/` (docs/client-api.md).

Every answer of a keyed route carries `X-RateLimit-Limit/-Remaining/-Reset`; errors are the booth's
vocabulary `{"error": code, "message": text}`. The OpenAPI document of these routes alone is at
`/api/v1/openapi.json` (its examples and builder: `v1_docs.py`). The key check and error body every
route shares are in `v1_base.py`, the batch routes in `v1_batches.py`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from boothgate.api.history import history
from boothgate.api.jobs import MAX_WAIT_SECONDS, parse_slot
from boothgate.api.live import ApiError, LiveJob, public_job
from boothgate.booth.booth_job import Answer
from boothgate.operator.api_keys import OverLimit
from boothgate.web import v1_batches
from boothgate.web.booth import body_stream, content_length
from boothgate.web.deps import ServicesDep
from boothgate.web.v1_base import KeyDep, error_response
from boothgate.web.v1_docs import (
    ACCEPTED_EXAMPLE,
    ERROR_EXAMPLE,
    ERRORS,
    IMAGE,
    JOB_EXAMPLE,
    SSE_EXAMPLE,
    document,
    multipart_body,
    shown,
)

SSE_PING_SECONDS = 15


router = APIRouter(prefix="/api/v1", tags=["client API"])


def _answer_response(answer: Answer, request: Request) -> Response:
    """The image (like the booth's answer) or the job's error in the booth's words."""
    headers = {**getattr(request.state, "rate_headers", {}), **answer.headers}
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers)


def _accepted(live: LiveJob, request: Request) -> JSONResponse:
    base = f"/api/v1/jobs/{live.id}"
    body = {
        "id": live.id,
        "status": live.stage,
        "status_url": base,
        "result_url": f"{base}/result",
        "events_url": f"{base}/events",
    }
    headers = {**getattr(request.state, "rate_headers", {}), "Location": base}
    return JSONResponse(body, status_code=202, headers=headers)


# --- what a key may use -------------------------------------------------------------------
@router.get(
    "/slots",
    summary="The slots this key may use",
    responses={
        200: shown(
            [
                {
                    "slot": "gemini/3",
                    "tab": "gemini",
                    "number": 3,
                    "name": "Космос",
                    "kind": "background",
                    "model": "gemini-2.5-flash-image",
                    "enabled": True,
                }
            ],
            "Slots in the key's scope",
        ),
        **ERRORS,
    },
)
async def slots(caller: KeyDep, services: ServicesDep) -> list[dict[str, Any]]:
    out = []
    held = await services.events.running_slots() if caller.by_event else {}  # slot -> event id, one read
    for slot in await services.slots.find():
        if not caller.may_use(slot.provider, slot.number, held.get(f"{slot.provider}/{slot.number}")):
            continue
        options = slot.options or {}
        out.append(
            {
                "slot": f"{slot.provider}/{slot.number}",
                "tab": slot.provider,
                "number": slot.number,
                "name": slot.name,
                "kind": slot.kind,
                "model": options.get("model") or None,
                "enabled": slot.enabled,
            }
        )
    return out


# --- jobs ---------------------------------------------------------------------------------
@router.post(
    "/jobs",
    summary="Process one photo",
    description="Answers 202 at once with the job's addresses. With `?wait=N` (≤ 50 s) it answers with the "
    "image itself (200) when the job is done within N seconds, like the booth; otherwise 202.",
    status_code=202,
    responses={
        202: shown(ACCEPTED_EXAMPLE, "Accepted: the job runs"),
        200: IMAGE,
        403: shown({"error": "out_of_scope", "message": "This key may not use slot gemini/5."}, "Not this key's slot"),
        404: shown(ERROR_EXAMPLE, "No such slot"),
        413: shown({"error": "too_large", "message": "At most 31,457,280 bytes are accepted."}, "Too large"),
        422: shown({"error": "bad_slot", "message": "Name the slot as tab/number, e.g. gemini/3."}, "Bad form"),
        **ERRORS,
    },
    openapi_extra=multipart_body(
        {
            "file": {"type": "string", "format": "binary", "description": "The photo (JPEG, PNG or WEBP)."},
            "slot": {"type": "string", "example": "gemini/3", "description": "tab/number"},
            "style": {"type": "string", "description": "Any other field fills the slot's prompt placeholder {style}."},
        },
        ["file", "slot"],
    ),
)
async def create_job(
    request: Request,
    caller: KeyDep,
    services: ServicesDep,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
) -> Response:
    await services.api_keys.count_photos(caller, 1)
    received = await services.desk.receive(
        request.headers.get("content-type"), content_length(request), body_stream(request), caller
    )
    live = await services.desk.start(received, caller)
    if wait and await services.desk.wait(live, wait) and live.answer is not None:
        return _answer_response(live.answer, request)
    return _accepted(live, request)


@router.get(
    "/jobs",
    summary="The key's jobs, newest first",
    responses={
        200: shown({"jobs": [JOB_EXAMPLE], "next_cursor": "MjAyNi0xMi0wMlQxMzo0MDowMCswMDowMHwzZjJi"}, "A page"),
        **ERRORS,
    },
)
async def list_jobs(
    caller: KeyDep,
    services: ServicesDep,
    slot: str | None = None,
    status: Annotated[str | None, Query(description="succeeded | failed | cancelled | running")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    parsed = parse_slot(slot, services.registry) if slot else None
    rows, following = await history(services.jobs, caller, parsed, status, since, until, cursor, limit)
    return {"jobs": [public_job(job, services.desk.live(job.id, caller)) for job in rows], "next_cursor": following}


@router.get(
    "/jobs/{job_id}",
    summary="A job's stage, progress, error, timings and cost",
    responses={
        200: shown(JOB_EXAMPLE, "The job"),
        404: shown({"error": "not_found", "message": "There is no such job."}, "Unknown job"),
        **ERRORS,
    },
)
async def get_job(job_id: str, caller: KeyDep, services: ServicesDep) -> Any:
    view = await services.desk.view(job_id, caller)
    if view is None:
        return error_response(404, "not_found", "There is no such job.")
    return view


@router.get(
    "/jobs/{job_id}/result",
    summary="The result image",
    description="200 with the image when the job succeeded; the job's error (its booth status) when it failed; "
    "409 `not_ready` while it runs (with `?wait=N` ≤ 50 s the answer waits for it).",
    responses={
        200: IMAGE,
        409: shown({"error": "not_ready", "message": "The job is at_provider."}, "Still running"),
        **ERRORS,
    },
)
async def job_result(
    job_id: str,
    request: Request,
    caller: KeyDep,
    services: ServicesDep,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
) -> Response:
    live = await services.desk.find_live(job_id, caller)
    if live is not None and wait:
        await services.desk.wait(live, wait)
    if live is not None and live.answer is not None:
        return _answer_response(live.answer, request)
    job = await services.desk.row(job_id, caller)
    if job is None and live is None:
        return error_response(404, "not_found", "There is no such job.")
    if job is None or job.status in ("received", "running"):
        stage = live.stage if live is not None else "preparing"
        return error_response(409, "not_ready", f"The job is {stage}.", {"Retry-After": "1"})
    if job.status == "succeeded" and job.result_path:
        data = await _read(services, job.result_path)
        if data is not None:
            return Response(data, media_type=job.result_mime or "image/jpeg", headers={"X-Job-Id": job.id})
        return error_response(410, "result_gone", "The result is no longer kept (retention).")
    return error_response(job.http_status or 500, job.error_code or "failed", job.message or "The job failed.")


async def _read(services: Any, relative: str) -> bytes | None:
    import asyncio

    try:
        await services.media.fetch(relative)  # written by another node (shared bucket)
        return await asyncio.to_thread(services.media.resolve(relative).read_bytes)
    except (OSError, ValueError):
        return None


@router.get(
    "/jobs/{job_id}/events",
    summary="The job's progress as Server-Sent Events",
    description="`text/event-stream`: one `progress` event per stage (`data` is JSON "
    '`{"stage", "progress", "at", "seq"}`, `id` is `seq`), then the stream ends after the final stage. '
    "Reconnect with `Last-Event-ID` to get only what came after.",
    responses={
        200: {"description": "The event stream", "content": {"text/event-stream": {"example": SSE_EXAMPLE}}},
        **ERRORS,
    },
)
async def job_events(job_id: str, request: Request, caller: KeyDep, services: ServicesDep) -> Response:
    live = await services.desk.find_live(job_id, caller)
    if live is None:
        view = await services.desk.view(job_id, caller)
        if view is None:
            return error_response(404, "not_found", "There is no such job.")
        final = {"stage": view["status"], "progress": view["progress"], "at": view["finished_at"], "seq": 0}

        async def once() -> Any:
            yield {"event": "progress", "id": "0", "data": json.dumps(final)}

        return EventSourceResponse(once(), ping=SSE_PING_SECONDS)
    last = request.headers.get("last-event-id", "")
    since = int(last) + 1 if last.isdigit() else 0

    async def stream() -> Any:
        async for event in live.changes(since):
            yield {"event": "progress", "id": str(event["seq"]), "data": json.dumps(event)}

    return EventSourceResponse(stream(), ping=SSE_PING_SECONDS, headers=getattr(request.state, "rate_headers", {}))


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a job",
    description="A provider call already made is stopped and never made again (not billed twice).",
    responses={200: shown(JOB_EXAMPLE | {"status": "cancelled", "progress": 100}, "The job"), **ERRORS},
)
async def cancel_job(job_id: str, caller: KeyDep, services: ServicesDep) -> Any:
    live = await services.desk.find_live(job_id, caller)
    if live is None:
        view = await services.desk.view(job_id, caller)
        return view if view is not None else error_response(404, "not_found", "There is no such job.")
    await services.desk.cancel(live)
    return await services.desk.view(job_id, caller)


router.include_router(v1_batches.router)


# --- the document ---------------------------------------------------------------------------
public = APIRouter()


@public.get("/api/v1/openapi.json", include_in_schema=False)
async def openapi() -> JSONResponse:
    return JSONResponse(document(router.routes))


def api_error_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def over_limit_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OverLimit)
    return error_response(429, exc.code, exc.message, exc.headers)
