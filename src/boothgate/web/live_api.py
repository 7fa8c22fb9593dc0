"""JSON API for keeping up with the real services: model lists, connection checks, rehearsals.

GET  /api/providers/{name}/models      the live model list (cached; `?refresh=1` reads it now)
POST /api/providers/{name}/check       a cheap live call: {"ok", "message", "seconds"}
GET  /api/rehearsals/plan              what a rehearsal would run and cost (`?tab=` narrows it)
POST /api/rehearsals                   start one (multipart: optional `photo`, optional `tab`)
GET  /api/rehearsals/{id}              its progress, slot by slot
GET  /api/rehearsals/sample            the sample photo the project ships
GET  /api/local/styles/{style}/preview  the offline style applied to the sample photo (rendered once)
PUT  /api/tabs/hidden                  tabs left out of the top bar and the statistics
"""

from __future__ import annotations

import asyncio
import logging
import time
import typing
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from boothgate.booth import rehearsal
from boothgate.imaging.images import sniff
from boothgate.local import engine
from boothgate.operator import tab_bar
from boothgate.providers.base import Provider
from boothgate.providers.local import Style
from boothgate.providers.registry import UnknownProvider
from boothgate.web.deps import ServicesDep, require_admin

log = logging.getLogger("boothgate.web")

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


def _provider(services: ServicesDep, name: str) -> Provider | None:
    try:
        return services.registry.get(name)
    except UnknownProvider as exc:
        raise HTTPException(404, f"There is no provider {name}.") from exc


@router.get("/providers/{name}/models")
async def provider_models(name: str, services: ServicesDep, refresh: bool = False) -> dict[str, Any]:
    """Never a 500: when the service cannot be asked, `models` is empty and `problem` says why."""
    provider = _provider(services, name)
    lists = services.model_lists
    listing = lists.get(name)
    if refresh or listing is None:
        listing = await lists.refresh(name)
    body = listing.public()
    current = getattr(services.settings, provider.model_setting, None) if provider and provider.model_setting else None
    body["current"] = current
    body["current_offered"] = lists.offered(name, current or "")
    methods = getattr(provider, "methods", None)
    if methods:
        body["methods"] = list(methods)  # Turbotext: no models, its methods are the choice
    return body


@router.post("/providers/{name}/check")
async def provider_check(name: str, services: ServicesDep) -> dict[str, Any]:
    provider = _provider(services, name)
    if provider is None:
        return {"ok": False, "message": "This provider is not available in this version.", "seconds": 0.0}
    started = time.monotonic()
    try:
        result = await provider.check()
    except Exception as exc:  # a check must answer in words, never with a 500
        log.exception("check of %s failed", name)
        return {"ok": False, "message": f"The check itself failed ({type(exc).__name__}).", "seconds": 0.0}
    services.model_lists.refresh_soon([name])  # what the check just learnt also updates the lists
    seconds = result.seconds or round(time.monotonic() - started, 3)
    return {"ok": result.ok, "message": result.message, "seconds": seconds}


def _tabs(services: ServicesDep, tab: str | None) -> list[str] | None:
    if not tab:
        return None
    if not services.registry.knows(tab):
        raise HTTPException(404, f"There is no provider {tab}.")
    return [tab]


@router.get("/rehearsals/plan")
async def rehearsal_plan(services: ServicesDep, tab: str | None = None) -> dict[str, Any]:
    settings = services.settings  # the statistics' currency, for the page and the command line
    plan = (await services.rehearsals.plan(_tabs(services, tab))).public()
    return {**plan, "currency": settings.cost_currency, "rub_per_usd": settings.rub_per_usd}


@router.get("/rehearsals/sample")
async def rehearsal_sample() -> Response:
    return Response(
        rehearsal.sample_photo(), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.post("/rehearsals", status_code=202)
async def start_rehearsal(request: Request, services: ServicesDep) -> Any:
    limit = services.settings.max_upload_bytes
    form = await request.form(max_files=1, max_fields=5)
    tab = form.get("tab")
    tabs = _tabs(services, tab if isinstance(tab, str) else None)
    upload = form.get("photo")
    if upload is None or isinstance(upload, str):
        photo, name = rehearsal.sample_photo(), "sample-astronaut.jpg"
    else:
        photo, name = await upload.read(limit + 1), upload.filename or "photo.jpg"
        if len(photo) > limit:
            raise HTTPException(413, f"The photo is larger than {limit:,} bytes.")
        if sniff(photo[:16]) is None:
            raise HTTPException(415, "The photo is not a JPEG, PNG or WEBP image.")
    run = await services.rehearsals.start(photo, name, tabs)
    if not run.plan.slots:
        return JSONResponse({**run.public(), "message": "No enabled slot to rehearse."}, status_code=409)
    return run.public()


@router.get("/rehearsals/{run_id}")
async def get_rehearsal(run_id: str, services: ServicesDep) -> dict[str, Any]:
    run = services.rehearsals.get(run_id)
    if run is None:
        raise HTTPException(404, "No such rehearsal (they are kept until the server restarts).")
    return run.public()


@router.put("/tabs/hidden")
async def put_hidden_tabs(request: Request, services: ServicesDep) -> dict[str, list[str]]:
    """Hide tabs from the top bar and the statistics: `{"hidden": ["fal", ...]}` (issue 22)."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise HTTPException(400, 'Send JSON: {"hidden": [tab names]}.') from exc
    names = body.get("hidden") if isinstance(body, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names) or len(names) > 64:
        raise HTTPException(400, "`hidden` must be a list of tab names.")
    try:
        chosen = await tab_bar.set_hidden_tabs(services.db, services.registry.tabs, names)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    request.app.state.hidden_tabs = chosen
    return {"hidden": chosen}


STYLE_PREVIEW_LONG_SIDE = 360  # a thumbnail row on the card: small, and quick to render once
_style_previews: dict[str, bytes] = {}  # style → JPEG; the sample photo and the styles ship with the code


@router.get("/local/styles/{style}/preview")
async def style_preview(style: str, request: Request, services: ServicesDep) -> Response:
    """The offline style on the sample photo, rendered once per process on the image workers (issue 22)."""
    if style not in typing.get_args(Style):
        raise HTTPException(404, f"There is no offline style {style!r}.")
    data = _style_previews.get(style)
    if data is None:
        state = request.app.state
        if getattr(state, "style_preview_lock", None) is None:
            state.style_preview_lock = asyncio.Lock()
        async with state.style_preview_lock:  # one render at a time, each style once, whoever asks first
            data = _style_previews.get(style)
            if data is None:
                job = engine.Job("prompt", rehearsal.sample_photo(), None, style, STYLE_PREVIEW_LONG_SIDE, 82, 0)
                try:
                    rendered, _ = await services.imaging.workers.run(None, engine.run, job)
                except Exception as exc:  # the offline engine cannot run here (no OpenCV): say so
                    log.warning("style preview %s could not be rendered: %s", style, type(exc).__name__)
                    raise HTTPException(503, "The offline engine cannot render previews here.") from exc
                _style_previews[style] = data = rendered
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
