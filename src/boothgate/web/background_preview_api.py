"""The live preview of an offline background slot (issue 24).

    POST /api/slots/local/{number}/preview   multipart: `options` (JSON, the card's unsaved background
                                             options) and optionally `photo` (a sample of the operator's)
                                             → image/jpeg: the photo keyed onto the slot's background

It runs the real offline background path (`local.background`) on a copy of at most ~0.5 MP, on the image
workers, so the card can redraw it while a slider moves. Without `photo` the packaged green-screen sample
is keyed; without a slot background a built-in backdrop stands in.
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from boothgate import errors
from boothgate.imaging import background_preview
from boothgate.imaging.workers import WorkerLost
from boothgate.local.background import NoPerson
from boothgate.providers.local import BACKGROUND_OPTIONS, LocalOptions
from boothgate.web.api import slot_or_404
from boothgate.web.deps import ServicesDep, require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])

PREVIEW_MAX_BYTES = 10 * 1024 * 1024  # a phone's sample photo; a preview needs no more
PREVIEW_MAX_PIXELS = 40_000_000  # a bigger picture is refused (413) before any pixel is decoded
PREVIEW_SECONDS = 10.0  # past this the worker is stopped: the card says so and keeps its last preview


def _options(raw: object) -> dict[str, object]:
    if raw is None:
        return LocalOptions().model_dump(include=set(BACKGROUND_OPTIONS))
    if not isinstance(raw, str):
        raise HTTPException(422, "`options` must be a JSON object of the slot's options.")
    try:
        given = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(422, "`options` is not valid JSON.") from exc
    if not isinstance(given, dict):
        raise HTTPException(422, "`options` must be a JSON object of the slot's options.")
    wanted = {name: value for name, value in given.items() if name in BACKGROUND_OPTIONS}
    try:
        return LocalOptions.model_validate(wanted).model_dump(include=set(BACKGROUND_OPTIONS))
    except ValidationError as exc:
        detail = [{"loc": ["options", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        raise HTTPException(422, detail) from exc


async def _photo(request: Request) -> tuple[bytes | None, object]:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > PREVIEW_MAX_BYTES + 64 * 1024:
        raise HTTPException(413, f"A preview photo may be at most {PREVIEW_MAX_BYTES:,} bytes.")
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("photo")
    data = None
    if upload is not None and not isinstance(upload, str):
        data = await upload.read(PREVIEW_MAX_BYTES + 1)
        if len(data) > PREVIEW_MAX_BYTES:
            raise HTTPException(413, f"A preview photo may be at most {PREVIEW_MAX_BYTES:,} bytes.")
        if not data:
            raise HTTPException(422, "The photo is empty.")
    return data, form.get("options")


def _refused(status: int, exc: errors.BoothError, message: str | None = None) -> JSONResponse:
    """The reason in words and as a code the card translates (`error.<code>`)."""
    return JSONResponse({"detail": message or exc.message, "error": exc.code}, status_code=status)


@router.post("/slots/local/{number}/preview")
async def background_preview_route(number: str, request: Request, services: ServicesDep) -> Response:
    slot = await slot_or_404(services, "local", number)
    photo, raw_options = await _photo(request)
    options = _options(raw_options)
    await services.slots.fetch_files(slot)  # the background may be stored through another node
    path = services.slots.reference_path(slot)
    reference = await asyncio.to_thread(path.read_bytes) if path is not None else None
    state = request.app.state
    if getattr(state, "background_preview_lock", None) is None:
        state.background_preview_lock = asyncio.Lock()
    deadline = time.monotonic() + PREVIEW_SECONDS
    try:
        # one preview at a time (guests' photos keep the workers), and the wait for it counts towards the bound
        async with asyncio.timeout(PREVIEW_SECONDS), state.background_preview_lock:
            data = await services.imaging.workers.run(
                deadline, background_preview.render, photo or background_preview.sample_photo(), reference,
                options, PREVIEW_MAX_PIXELS,
            )  # fmt: skip
    except NoPerson as exc:
        return _refused(422, exc)
    except (errors.UnsupportedImage, errors.CorruptImage) as exc:
        which = "background" if photo is None else "photo or the slot's background"
        return _refused(422, exc, f"The {which} cannot be used: {exc.message}")
    except errors.TooLarge as exc:
        return _refused(413, exc)
    except WorkerLost:  # the worker died on it (a hostile image, or over its memory ceiling)
        return JSONResponse({"detail": "The image could not be processed.", "error": "corrupt_image"}, 422)
    except TimeoutError as exc:
        raise HTTPException(503, "The preview took too long; the image workers are busy.") from exc
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
