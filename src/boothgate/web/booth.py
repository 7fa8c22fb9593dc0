"""The upload link: `POST /booth/{provider}/{number}`. Parses nothing itself; the spine does the work."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import Receive

from boothgate import errors
from boothgate.booth.spine import BoothRequest
from boothgate.web.deps import ServicesDep, client_address

router = APIRouter()
# Where uvicorn's HTTP protocols (h11, httptools) live: their `receive` is safe to cut short (`BodyChunks`).
UVICORN_HTTP = "uvicorn.protocols.http."


def header_password(request: Request) -> str | None:
    """Other clients may send the password as a Bearer token or an X-Api-Key header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


class BodyChunks:
    """The request body, chunk by chunk, read from the ASGI `receive` itself (not Starlette's
    `request.stream()`, an async generator that a cancelled wait would close). Under uvicorn a wait for the
    next chunk may be cut short by a timeout and simply asked again: its `receive` takes the bytes only
    once they are there, so a cut wait leaves them for the next call (`cancel_safe`, used by
    booth/multipart._next_chunk: no task per chunk). Any other `receive` (another server, a middleware that
    wraps it, httpx's ASGITransport in a test) is not trusted with that: the chunk is awaited in a task, as
    before. A booth that hangs up mid-upload is a bad request (400), not a server error."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._done = False
        owner = type(getattr(receive, "__self__", None))
        self.cancel_safe = owner.__module__.startswith(UVICORN_HTTP)

    def __aiter__(self) -> BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            message = await self._receive()
            if message["type"] == "http.request":
                self._done = not message.get("more_body", False)
                body: bytes = message.get("body", b"")
                if body:
                    return body
            elif message["type"] == "http.disconnect":
                self._done = True
                raise errors.MalformedRequest(
                    "The booth closed the connection before the upload was complete.", code="client_disconnected"
                )
        raise StopAsyncIteration


def body_stream(request: Request) -> BodyChunks:
    return BodyChunks(request.receive)


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
