"""The live event view: a page to leave open on a second screen, and the JSON it refreshes itself from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from boothgate import i18n
from boothgate.operator import budget as budgets
from boothgate.providers.registry import TAB_LABELS
from boothgate.records.live import live_view
from boothgate.runtime import Services
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
async def live_data(
    services: ServicesDep, hours: float = Query(3.0, gt=0, le=48), event: int | None = Query(None, ge=1)
) -> JSONResponse:
    data: dict[str, Any] = await live_view(services.db, services.registry.tabs, hours, event_id=event)
    data["events"] = await event_budgets(services)  # the filter's choices and their budget warnings
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


async def event_budgets(services: Services) -> list[dict[str, Any]]:
    """Running and upcoming events with their budget state (a warning from 80 % on)."""
    shown = []
    for event in await services.events.find():
        public = services.events.public(event, "", services.settings.retention_days)
        if public["state"] in ("running", "upcoming"):
            shown.append(
                {"id": event.id, "name": event.name, "state": public["state"], "slots": public["slots"],
                 "budget": budgets.state(event, services.settings)}
            )  # fmt: skip
    return shown
