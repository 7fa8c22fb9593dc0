"""The upload link: `POST /booth/{provider}/{number}`. Parses nothing itself; the spine does the work."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from boothgate import errors
from boothgate.booth.spine import BoothRequest
from boothgate.web.deps import ServicesDep, client_address

router = APIRouter()


def header_password(request: Request) -> str | None:
    """Other clients may send the password as a Bearer token or an X-Api-Key header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


async def body_stream(request: Request) -> AsyncIterator[bytes]:
    """The request body; a booth that hangs up mid-upload is a bad request (400), not a server error."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise errors.MalformedRequest(
            "The booth closed the connection before the upload was complete.", code="client_disconnected"
        ) from None


@router.post("/booth/{provider}/{number}")
@router.post("/booth/{provider}/{number}/", include_in_schema=False)
async def upload(provider: str, number: str, request: Request, services: ServicesDep) -> Response:
    answer = await services.ingest.handle(
        BoothRequest(
            provider=provider,
            number=number,
            content_type=request.headers.get("content-type"),
            content_length=content_length(request),
            header_password=header_password(request),
            body=body_stream(request),
            received_at=request.state.received_at,
            client=client_address(request),
            query=dict(request.query_params),  # ?password= / ?key= and prompt variables like ?style=
        )
    )
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type, headers=answer.headers)


@router.get("/booth/{provider}/{number}")
async def explain(provider: str, number: str) -> JSONResponse:
    """Someone opened an upload link in a browser: say what it is for."""
    return JSONResponse(
        {
            "message": f"This is the boothgate upload link of slot {provider}/{number}. "
            "Paste it into the booth program; it accepts POST with the photo in 'fileToUpload'.",
        },
        status_code=405,
        headers={"Allow": "POST"},
    )
