"""The guest's copy (issue 30): the public pages `/p/<token>` and `/g/<token>` (no sign-in, no admin
links, `noindex`), and the operator's gallery API under `/api/galleries` (behind Basic Auth).

Every unknown or malformed token, and every wrong gallery PIN, counts against the asking address
(`services.share_throttle`); past the limit the address gets 429 for a while, whatever it asks. Several
nodes on PostgreSQL count those guesses together (issue 27), so the limit is not one per node.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import segno
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from boothgate import i18n
from boothgate.sharing import tokens
from boothgate.sharing.galleries import (
    GalleryInvalid,
    GalleryPhoto,
    check_pin,
    pin_cookie_opens,
    pin_cookie_value,
    zip_stream,
)
from boothgate.sharing.pages import PageView
from boothgate.storage.models import Gallery
from boothgate.web.deps import ServicesDep, client_address, require_admin, same_origin
from boothgate.web.pages import static_version, templates

router = APIRouter(include_in_schema=False)
admin = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])

NOINDEX = {"X-Robots-Tag": "noindex, nofollow, noarchive", "Cache-Control": "no-store"}
REFRESH_SECONDS = 5
PHONE_LONG_SIDE = 1280
TV_LONG_SIDE = 1920
PIN_COOKIE = "boothgate_gallery"
Found = TypeVar("Found")


def from_our_page(request: Request) -> bool:
    """A guest page's form post comes from our own page. Those pages send no referrer (meta no-referrer), so
    a browser's form post carries `Origin: null`, which `same_origin` refuses; its Sec-Fetch-Site, which no
    page can set, still tells our own page from another site's."""
    if request.headers.get("sec-fetch-site") == "same-origin":
        return True
    return same_origin(request)


def our_page_only(request: Request) -> None:
    """The guest pages' form posts (delete, PIN): refused from any other site."""
    if not from_our_page(request):
        raise HTTPException(403, "Cross-site request refused.")


# --- language ---------------------------------------------------------------------------------
def guest_language(request: Request) -> str:
    """`?lang=` or the browser's Accept-Language (the first of ru/en by quality); Russian otherwise."""
    asked = request.query_params.get("lang")
    if asked in i18n.LANGUAGES:
        return asked
    best, best_q = i18n.DEFAULT_LANGUAGE, -1.0
    for part in request.headers.get("accept-language", "").split(",")[:20]:
        code, _, params = part.strip().partition(";")
        code = code.strip().lower().split("-")[0]
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if code in i18n.LANGUAGES and quality > best_q:
            best, best_q = code, quality
    return best


def _context(request: Request, **values: Any) -> dict[str, Any]:
    lang = guest_language(request)
    return {"lang": lang, "t": i18n.translator(lang), "languages": i18n.LANGUAGES,
            "static_version": static_version(), **values}  # fmt: skip


# --- the throttle -----------------------------------------------------------------------------
def _check_throttle(request: Request, services: ServicesDep) -> Response | None:
    retry = services.share_throttle.retry_after(client_address(request))
    return None if retry is None else _throttled(request, retry)


async def _guessed(request: Request, services: ServicesDep) -> Response | None:
    """A wrong guess (an unknown token, a wrong PIN) counted against the address; the 429 page when it went
    past the allowance counted by all nodes together (PostgreSQL, a bounded wait: storage/counts.py)."""
    throttle, address = services.share_throttle, client_address(request)
    throttle.failed(address)
    if not await throttle.failed_everywhere(address):
        return None
    return _throttled(request, throttle.retry_after(address) or throttle.lockout_seconds)


def _throttled(request: Request, retry: float) -> Response:
    context = _context(request, state="throttled")
    t = context["t"]
    context.update(heading=t("guest.throttled"), hint=t("guest.throttled_hint"), refresh=None)
    headers = {**NOINDEX, "Retry-After": str(int(retry) + 1)}
    return templates.TemplateResponse(request, "guest.html", context, status_code=429, headers=headers)


async def _not_found(request: Request, services: ServicesDep) -> Response:
    throttled = await _guessed(request, services)
    if throttled is not None:
        return throttled
    context = _context(request, state="unknown")
    t = context["t"]
    context.update(heading=t("guest.unknown"), hint=t("guest.unknown_hint"), refresh=None)
    return templates.TemplateResponse(request, "guest.html", context, status_code=404, headers=NOINDEX)


async def _found(
    request: Request, services: ServicesDep, token: str, find: Callable[[str], Awaitable[Found | None]]
) -> Found | Response:
    """Every public page's way in: a throttled address gets 429; sharing off, a malformed token, or one
    `find` does not know (None) gets 404 and counts against the address."""
    throttled = _check_throttle(request, services)
    if throttled is not None:
        return throttled
    if not services.settings.sharing_enabled or not tokens.well_formed(token):
        return await _not_found(request, services)
    found = await find(token)
    if found is None:
        return await _not_found(request, services)
    return found


async def _view(request: Request, services: ServicesDep, token: str) -> PageView | Response:
    async def known(token: str) -> PageView | None:
        view = await services.guest_pages.find(token, services.settings.retention_days)
        return None if view.state == "unknown" else view

    return await _found(request, services, token, known)


async def _ready_image(request: Request, services: ServicesDep, token: str) -> tuple[PageView, Path] | Response:
    """The guest's photo itself (the view and its image): 410 once it is gone, 404 while there is none yet."""
    view = await _view(request, services, token)
    if isinstance(view, Response):
        return view
    if view.state != "ready" or view.image is None:
        return Response(status_code=410 if view.state == "gone" else 404, headers=NOINDEX)
    return view, view.image


# --- the guest's page -------------------------------------------------------------------------
@router.get("/p/{token}", response_class=HTMLResponse)
async def guest_page(token: str, request: Request, services: ServicesDep) -> Response:
    view = await _view(request, services, token)
    if isinstance(view, Response):
        return view
    context = _context(request, state=view.state)
    t = context["t"]
    base = f"/p/{token}"
    status = 200
    refresh: int | None = None
    if view.state == "making":
        heading, hint, refresh = t("guest.making"), t("guest.making_hint"), REFRESH_SECONDS
    elif view.state == "ready":
        heading = t("guest.late_ready") if view.late_delivered else t("guest.ready")
        hint = t("guest.late_coming") if view.late_running else ""
        refresh = REFRESH_SECONDS * 2 if view.late_running else None
    else:
        status = 410
        reason = view.reason if view.reason in ("deleted", "expired", "failed") else "expired"
        heading, hint = t(f"guest.{reason}"), t(f"guest.{reason}_hint")
    version = hashlib.sha256(str(view.image).encode()).hexdigest()[:8] if view.image else ""
    context.update(
        heading=heading,
        hint=hint,
        refresh=refresh,
        page_url=base,
        photo_url=f"{base}/photo?v={version}",
        download_url=f"{base}/download?v={version}",
        delete_url=f"{base}/delete",
        confirm_delete=request.query_params.get("confirm") == "delete",
    )
    return templates.TemplateResponse(request, "guest.html", context, status_code=status, headers=NOINDEX)


@router.get("/p/{token}/photo")
async def guest_photo(token: str, request: Request, services: ServicesDep) -> Response:
    ready = await _ready_image(request, services, token)
    if isinstance(ready, Response):
        return ready
    _, image = ready
    data = await _scaled(services, image, PHONE_LONG_SIDE)
    return Response(data, media_type="image/jpeg", headers=NOINDEX)


@router.get("/p/{token}/download")
async def guest_download(token: str, request: Request, services: ServicesDep) -> Response:
    ready = await _ready_image(request, services, token)
    if isinstance(ready, Response):
        return ready
    view, image = ready
    data = await asyncio.to_thread(image.read_bytes)
    name = f"photo{image.suffix}"
    headers = {**NOINDEX, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type=view.mime, headers=headers)


@router.post("/p/{token}/delete", dependencies=[Depends(our_page_only)])
async def guest_delete(token: str, request: Request, services: ServicesDep) -> Response:
    view = await _view(request, services, token)
    if isinstance(view, Response):
        return view
    if view.state in ("making", "ready"):
        await services.guest_pages.delete(token)
        _forget_scaled(view.image)
    return RedirectResponse(f"/p/{token}", status_code=303)


# --- scaled copies (for phones and the TV), kept briefly in memory, never on disk ---------------
_scaled_cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
SCALED_CACHE_ENTRIES = 24


async def _scaled(services: ServicesDep, path: Path, long_side: int) -> bytes:
    key = (str(path), long_side)
    cached = _scaled_cache.get(key)
    if cached is not None:
        _scaled_cache.move_to_end(key)
        return cached
    try:
        data = await services.imaging.thumbnail(path, long_side)
    except FileNotFoundError as exc:
        raise HTTPException(410, "The photo is gone.") from exc
    _scaled_cache[key] = data
    while len(_scaled_cache) > SCALED_CACHE_ENTRIES:
        _scaled_cache.popitem(last=False)
    return data


def _forget_scaled(path: Path | None) -> None:
    if path is None:
        return
    for key in [k for k in _scaled_cache if k[0] == str(path)]:
        del _scaled_cache[key]


# --- galleries (public) -----------------------------------------------------------------------
async def _gallery(request: Request, services: ServicesDep, token: str) -> Gallery | Response:
    return await _found(request, services, token, services.galleries.by_token)


def _unlocked(request: Request, gallery: Gallery) -> bool:
    return pin_cookie_opens(gallery, request.cookies.get(f"{PIN_COOKIE}_{gallery.id}"))


@router.get("/g/{token}", response_class=HTMLResponse)
async def gallery_page(token: str, request: Request, services: ServicesDep) -> Response:
    gallery = await _gallery(request, services, token)
    if isinstance(gallery, Response):
        return gallery
    need_pin = not _unlocked(request, gallery)
    photos = [] if need_pin else await services.galleries.photos(gallery, services.settings.retention_days)
    context = _context(request, name=gallery.name, need_pin=need_pin, photos=photos, base=f"/g/{token}",
                       wrong_pin=request.query_params.get("pin") == "wrong")  # fmt: skip
    return templates.TemplateResponse(request, "gallery.html", context, headers=NOINDEX)


@router.post("/g/{token}/pin", dependencies=[Depends(our_page_only)])
async def gallery_pin(token: str, request: Request, services: ServicesDep) -> Response:
    gallery = await _gallery(request, services, token)
    if isinstance(gallery, Response):
        return gallery
    body = (await request.body())[:200].decode("ascii", "replace")
    pin = next((v for k, _, v in (p.partition("=") for p in body.split("&")) if k == "pin"), "")
    if not await asyncio.to_thread(check_pin, gallery.pin_hash, pin):
        return await _guessed(request, services) or RedirectResponse(f"/g/{token}?pin=wrong", status_code=303)
    response = RedirectResponse(f"/g/{token}", status_code=303)
    response.set_cookie(f"{PIN_COOKIE}_{gallery.id}", pin_cookie_value(gallery), httponly=True, samesite="lax",
                        path=f"/g/{token}", max_age=7 * 24 * 3600)  # fmt: skip
    return response


async def _open_gallery(request: Request, services: ServicesDep, token: str) -> Gallery | Response:
    gallery = await _gallery(request, services, token)
    if isinstance(gallery, Response):
        return gallery
    if not _unlocked(request, gallery):
        return RedirectResponse(f"/g/{token}", status_code=303)
    return gallery


async def _gallery_photo(request: Request, services: ServicesDep, token: str, job_id: str) -> GalleryPhoto | Response:
    """One photo of an open gallery; 404 for a job that is not (or no longer) in it."""
    gallery = await _open_gallery(request, services, token)
    if isinstance(gallery, Response):
        return gallery
    photo = await services.galleries.photo(gallery, job_id[:40], services.settings.retention_days)
    if photo is None:
        return Response(status_code=404, headers=NOINDEX)
    return photo


@router.get("/g/{token}/i/{job_id}")
async def gallery_image(token: str, job_id: str, request: Request, services: ServicesDep) -> Response:
    photo = await _gallery_photo(request, services, token, job_id)
    if isinstance(photo, Response):
        return photo
    size = TV_LONG_SIDE if request.query_params.get("size") == str(TV_LONG_SIDE) else 480
    return Response(await _scaled(services, photo.path, size), media_type="image/jpeg", headers=NOINDEX)


@router.get("/g/{token}/i/{job_id}/full")
async def gallery_full(token: str, job_id: str, request: Request, services: ServicesDep) -> Response:
    photo = await _gallery_photo(request, services, token, job_id)
    if isinstance(photo, Response):
        return photo
    try:
        data = await asyncio.to_thread(photo.path.read_bytes)
    except FileNotFoundError:
        return Response(status_code=410, headers=NOINDEX)
    return Response(data, media_type=photo.mime, headers=NOINDEX)


@router.get("/g/{token}/zip")
async def gallery_zip(token: str, request: Request, services: ServicesDep) -> Response:
    gallery = await _open_gallery(request, services, token)
    if isinstance(gallery, Response):
        return gallery
    photos = await services.galleries.all_photos(gallery, services.settings.retention_days)
    headers = {**NOINDEX, "Content-Disposition": 'attachment; filename="photos.zip"'}
    # A plain iterator: Starlette runs it in a thread pool, so the file reads never block the event loop.
    return StreamingResponse(zip_stream(photos), media_type="application/zip", headers=headers)


@router.get("/g/{token}/feed.json")
async def gallery_feed(token: str, request: Request, services: ServicesDep) -> Response:
    gallery = await _open_gallery(request, services, token)
    if isinstance(gallery, Response):
        return gallery
    photos = await services.galleries.photos(gallery, services.settings.retention_days)
    body = {"photos": [{"id": p.job_id, "at": p.created_at.isoformat() if p.created_at else None} for p in photos]}
    return JSONResponse(body, headers=NOINDEX)


@router.get("/g/{token}/show", response_class=HTMLResponse)
async def gallery_show(token: str, request: Request, services: ServicesDep) -> Response:
    gallery = await _open_gallery(request, services, token)
    if isinstance(gallery, Response):
        return gallery
    photos = await services.galleries.photos(gallery, services.settings.retention_days)
    url = tokens.gallery_url(services.settings.public_base_url or str(request.base_url).rstrip("/"), token)
    qr_svg = segno.make_qr(url, error="m").svg_data_uri(scale=4, border=4)
    context = _context(request, name=gallery.name, photos=photos, base=f"/g/{token}", gallery_url=url, qr_svg=qr_svg)
    return templates.TemplateResponse(request, "slideshow.html", context, headers=NOINDEX)


# --- the operator's API -----------------------------------------------------------------------
class GalleryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    slots: list[str] | None = Field(None, max_length=100)
    pin: str | None = Field(None, max_length=8)
    enabled: bool | None = None


class HiddenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: bool


def public_gallery(gallery: Gallery, base_url: str) -> dict[str, Any]:
    return {
        "id": gallery.id,
        "name": gallery.name,
        "slots": gallery.slots or [],
        "event_id": gallery.event_id,
        "has_pin": bool(gallery.pin_hash),
        "enabled": gallery.enabled,
        "url": tokens.gallery_url(base_url, gallery.token),
        "slideshow_url": tokens.gallery_url(base_url, gallery.token) + "/show",
        "created_at": gallery.created_at.isoformat() if gallery.created_at else None,
    }


def _base(request: Request, services: ServicesDep) -> str:
    return services.settings.public_base_url or str(request.base_url).rstrip("/")


@admin.get("/galleries")
async def list_galleries(request: Request, services: ServicesDep) -> list[dict[str, Any]]:
    return [public_gallery(g, _base(request, services)) for g in await services.galleries.all()]


@admin.post("/galleries", status_code=201)
async def create_gallery(body: GalleryIn, request: Request, services: ServicesDep) -> dict[str, Any]:
    try:
        gallery = await services.galleries.create(body.name or "", body.slots or [], body.pin)
    except GalleryInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    return public_gallery(gallery, _base(request, services))


@admin.put("/galleries/{gallery_id}")
async def update_gallery(gallery_id: int, body: GalleryIn, request: Request, services: ServicesDep) -> dict[str, Any]:
    try:
        gallery = await services.galleries.update(gallery_id, body.model_dump(exclude_unset=True))
    except GalleryInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    if gallery is None:
        raise HTTPException(404, "No such gallery.")
    return public_gallery(gallery, _base(request, services))


@admin.delete("/galleries/{gallery_id}", status_code=204)
async def delete_gallery(gallery_id: int, services: ServicesDep) -> Response:
    if not await services.galleries.delete(gallery_id):
        raise HTTPException(404, "No such gallery.")
    return Response(status_code=204)


@admin.post("/events/{event_id}/gallery")
async def open_event_gallery(event_id: int, request: Request, services: ServicesDep) -> dict[str, Any]:
    """The event's gallery (made now if no guest has opened it yet), so the Events page can set its PIN."""
    event = await services.events.get(event_id)
    if event is None:
        raise HTTPException(404, f"There is no event {event_id}.")
    return public_gallery(await services.galleries.for_event(event), _base(request, services))


@admin.put("/jobs/{job_id}/gallery_hidden")
async def hide_from_galleries(job_id: str, body: HiddenIn, services: ServicesDep) -> dict[str, Any]:
    if not await services.galleries.hide(job_id, body.hidden):
        raise HTTPException(404, "No such job.")
    return {"id": job_id, "gallery_hidden": body.hidden}


@admin.get("/sharing")
async def sharing_state(services: ServicesDep) -> dict[str, Any]:
    """For the UI's warning: can a guest's phone reach the public address?"""
    settings = services.settings
    return {
        "enabled": settings.sharing_enabled,
        "public_base_url": settings.public_base_url,
        "reach_problem": tokens.reach_problem(settings.public_base_url),
    }
