"""The FastAPI application: routers, lifespan (start/stop services), arrival clock, security headers."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boothgate import __version__
from boothgate.api.live import ApiError
from boothgate.operator.api_keys import OverLimit
from boothgate.ops.banner import banner
from boothgate.providers.base import Provider
from boothgate.runtime import Services
from boothgate.settings import Settings, get_settings
from boothgate.storage.media import MediaStore
from boothgate.web import (
    api,
    backdrops_api,
    background_preview_api,
    booth,
    client_admin,
    events_api,
    events_page,
    hooks,
    live,
    live_api,
    manual_site,
    media,
    moderation_api,
    pages,
    providers_api,
    references_api,
    settings_api,
    share,
    v1,
)
from boothgate.web.deps import ServicesDep
from boothgate.web.loopwatch import LoopWatch

log = logging.getLogger("boothgate")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]


class ArrivalClock:
    """Stamps each request with the monotonic instant it arrived: the deadline counts from here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["received_at"] = time.monotonic()

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    names = {name for name, _ in message.get("headers", [])}
                    message["headers"] = [
                        *message.get("headers", []),
                        *[(k, v) for k, v in SECURITY_HEADERS if k not in names],
                    ]
                await send(message)

            await self.app(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, registry_classes: dict[str, type[Provider]] | None = None) -> FastAPI:
    """Build the app. `registry_classes` replaces providers by tab name (tests and the benchmark)."""
    settings = settings or get_settings()
    loop_watch = LoopWatch() if settings.loop_watch else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(settings, registry_classes)
        app.state.services = services
        announce(services)
        _warm_up(app)
        _freeze_startup_objects()
        if loop_watch is not None:
            loop_watch.start()  # after start-up work: stalls while serving are what count
        try:
            yield
        finally:
            if loop_watch is not None:
                await loop_watch.stop()
            await services.stop()

    app = FastAPI(
        title="boothgate", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.include_router(booth.router)
    app.include_router(v1.public)
    app.include_router(v1.router)
    app.include_router(client_admin.router)
    app.include_router(client_admin.page_router)
    app.include_router(media.router)
    app.include_router(hooks.router)
    app.include_router(api.router)
    app.include_router(moderation_api.router)
    app.include_router(backdrops_api.router)
    app.include_router(background_preview_api.router)
    app.include_router(settings_api.router)
    app.include_router(providers_api.router)
    app.include_router(references_api.router)
    app.include_router(live_api.router)
    app.include_router(events_api.router)
    app.include_router(events_page.router)
    app.include_router(live.router)
    app.include_router(share.router)  # the guest's pages: public, before the admin pages
    app.include_router(share.admin)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    app.include_router(manual_site.router())  # /help: the manual, built from docs/

    @app.get("/health", response_model=None)
    async def health(services: ServicesDep) -> dict[str, Any] | JSONResponse:
        # A real query on the real tables (and, on SQLite, the file still being the one opened at start),
        # plus whether job writes are failing: a broken database answers 503 (issue 14).
        db_problem = await services.db.check()
        recorder = services.ingest.recorder
        write_error = recorder.last_error
        if db_problem is None and write_error and "locked" not in write_error:
            db_problem = f"job writes are failing ({write_error}); they are kept in the journal"
        database = db_problem is None
        providers = {}
        for name in services.registry.tabs:
            provider = services.registry.get(name)
            problem = "not available in this version" if provider is None else provider.problem()
            providers[name] = {"configured": problem is None, "problem": problem}
            providers[name].update(services.ingest.fallbacks.breaker.describe(name))  # offline detection
        health: dict[str, Any] = {
            "status": "ok" if database and not write_error else ("degraded" if database else "broken"),
            "version": __version__,
            "database": database,
            "database_problem": db_problem,
            "journal": recorder.public(),
            "providers": providers,
        }
        if services.moderation is not None:
            health["moderation"] = {"available": services.moderation.available, "problem": services.moderation.problem}
        if loop_watch is not None:
            health["loop_watch"] = loop_watch.snapshot()
        # Image workers: a task running past its deadline was not stopped — the booths behind it wait.
        health["image_workers"] = workers = services.imaging.snapshot()
        if workers["stuck"]:
            health["status"] = "degraded"
        if services.retention is not None:  # a clock jump: retention goes by kept-age, shown here
            health["retention"] = services.retention.public()
        # Admin sign-ins refused because wrong passwords used up the hashing rate: the operator may be locked out.
        health["admin_sign_in"] = hashing = services.credentials.hashing.public()
        if hashing["starved"]:
            health["status"] = "degraded"
        storage = await _storage_health(services.media)
        health["storage"] = storage
        if storage["problem"]:
            health["status"] = "broken"
        if services.draining:  # a load balancer stops sending booths here (issue 27)
            health["status"], health["draining"] = "draining", True
        if not database or storage["problem"] or services.draining:
            return JSONResponse(health, status_code=503)
        return health

    app.add_exception_handler(ApiError, v1.api_error_response)
    app.add_exception_handler(OverLimit, v1.over_limit_response)

    @app.exception_handler(ValueError)
    async def value_error(_: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.add_middleware(ArrivalClock)
    return app


def _warm_up(app: FastAPI) -> None:
    """Do at start what the first requests would otherwise do on the event loop while booths wait: FastAPI
    builds each router's route table on its first match (~35 ms for ours), Jinja compiles each template on
    its first render (~50 ms for the first page). Measured with cProfile on a first `/health`."""
    _warm_routes(app.router)
    for name in pages.templates.env.list_templates(extensions=["html"]):
        pages.templates.env.get_template(name)


def _warm_routes(router: object) -> None:
    # FastAPI 0.165 builds included routers' routes lazily (`effective_candidates`); with another
    # version this finds nothing to build and does nothing.
    for route in getattr(router, "routes", []):
        candidates = getattr(route, "effective_candidates", None)
        if callable(candidates):
            for candidate in candidates():
                _warm_routes_of(candidate)
        low_priority = getattr(route, "effective_low_priority_routes", None)
        if callable(low_priority):
            low_priority()


def _warm_routes_of(candidate: object) -> None:
    candidates = getattr(candidate, "effective_candidates", None)
    if callable(candidates):
        for child in candidates():
            _warm_routes_of(child)


def _freeze_startup_objects() -> None:
    """Take what start-up made (modules, classes, settings: ~200k objects that live as long as the process)
    out of the garbage collector's reach. Otherwise the first full collection while serving walks them all
    and stalls every booth for ~100 ms (measured by `make bench`). Once per process."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def announce(services: Services) -> None:
    """Print the start banner: where the UI is, the addresses booths can use, generated passwords once."""
    generated = services.generated
    settings = services.settings
    admin = (settings.admin_user, generated.admin_password) if generated.admin_password else None
    text = banner(
        settings.host,
        settings.port,
        settings.public_base_url,
        __version__,
        admin,
        generated.upload_password,
        admin_user=settings.admin_user,
        admin_from_env=settings.admin_password is not None,
    )
    print(text, flush=True)


async def _storage_health(media: MediaStore) -> dict[str, Any]:
    """Where media lives and, with a shared bucket, whether it answers now (a node that cannot keep
    originals there is taken out of the balancer's rotation: issue 27). Never a key, only the address."""
    if media.bucket is None:
        return {"kind": "local", "problem": None}
    return {"kind": "s3", "bucket": media.bucket.describe(), "problem": await media.bucket.check()}
