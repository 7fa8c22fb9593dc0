"""The Events page: running events at the top, create/edit/end/delete, statistics, export, presets."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from boothgate import i18n
from boothgate.providers.registry import SLOTS_PER_TAB, TAB_LABELS
from boothgate.web import pages
from boothgate.web.deps import ServicesDep, require_admin

router = APIRouter(dependencies=[Depends(require_admin)], include_in_schema=False)


@router.get("/events", response_class=HTMLResponse)
async def events_page(request: Request, services: ServicesDep) -> Response:
    t = i18n.translator(pages.page_language(request, services)[0])  # "Без интернета", not "Offline"
    labels = [[name, t(f"tab.{name}", TAB_LABELS.get(name, name.title()))] for name in services.registry.tabs]
    slot_names = {f"{s.provider}/{s.number}": s.name for s in await services.slots.find() if s.name}
    return pages.render(
        request,
        services,
        "events.html",
        active_page="events",
        labels=labels,
        slots_per_tab=SLOTS_PER_TAB,
        slot_names=slot_names,
        default_retention_days=services.settings.retention_days,
    )
