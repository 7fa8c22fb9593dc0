"""The live event view: a page to leave open on a second screen, and the JSON it refreshes itself from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from boothgate import i18n
from boothgate.providers.registry import TAB_LABELS
from boothgate.records.live import live_view
from boothgate.web import pages
from boothgate.web.deps import ServicesDep, require_admin

router = APIRouter(dependencies=[Depends(require_admin)], include_in_schema=False)

REFRESH_SECONDS = 3


@router.get("/live", response_class=HTMLResponse)
async def live_page(request: Request, services: ServicesDep) -> Response:
    t = i18n.translator(pages.page_language(request, services)[0])  # "Без интернета", not "Offline" (issue 22)
    labels = {name: t(f"tab.{name}", TAB_LABELS.get(name, name.title())) for name in services.registry.tabs}
    return pages.render(
        request, services, "live.html", active_page="live", refresh_seconds=REFRESH_SECONDS, labels=labels
    )


@router.get("/api/live")
async def live_data(services: ServicesDep, hours: float = Query(3.0, gt=0, le=48)) -> JSONResponse:
    data: dict[str, Any] = await live_view(services.db, services.registry.tabs, hours)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
