"""GET/PUT /api/settings: the runtime-editable settings, secrets masked, environment winning."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse

from boothgate.operator import settings_view
from boothgate.web.deps import ServicesDep, require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


def _listing(services: ServicesDep) -> dict[str, Any]:
    return {"settings": [view.public() for view in settings_view.describe(services.config)]}


@router.get("/settings")
async def get_settings_view(services: ServicesDep) -> dict[str, Any]:
    return _listing(services)


@router.put("/settings")
async def put_settings(services: ServicesDep, changes: dict[str, Any] = Body(...)) -> Any:  # noqa: B008
    """Change settings: `{"name": value}`; null resets to the default; a secret left empty stays as is.

    409 when a named setting is set in the environment (it always wins); 422 with `errors` per field.
    """
    try:
        await settings_view.apply(services.config, changes)
    except settings_view.SettingsLocked as exc:
        return JSONResponse(
            {
                "detail": "Set in the environment; change it there and restart.",
                "errors": {name: "set in the environment" for name in exc.fields},
            },
            status_code=409,
        )
    except settings_view.SettingsInvalid as exc:
        return JSONResponse({"detail": "Some values are not valid.", "errors": exc.errors}, status_code=422)
    return _listing(services)
