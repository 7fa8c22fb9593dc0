"""Webhook deliveries from providers that push their results (Turbotext in webhook mode).

`POST /hooks/turbotext/{secret}` with Turbotext's raw JSON body. A wrong secret is answered 404 as if
the route did not exist; a right one is always answered 200 — even for a duplicate, late or unknown
delivery (logged by the inbox), so Turbotext has no reason to keep retrying.
"""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from boothgate.web.deps import ServicesDep

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

MAX_HOOK_BYTES = 1024 * 1024  # a result answer is a few hundred bytes of JSON


@router.post("/hooks/turbotext/{secret}")
async def turbotext_hook(secret: str, request: Request, services: ServicesDep) -> Response:
    # Duck-typed so this module does not import a provider; tests may register their own.
    provider = services.registry.get("turbotext")
    inbox = getattr(provider, "inbox", None)
    if inbox is None or not inbox.accepts(secret):
        return JSONResponse({"error": "not_found"}, status_code=404)
    raw = await _body(request)
    try:
        body = json.loads(raw) if raw is not None else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        log.warning("turbotext webhook with a body that is not a JSON object ignored")
        return JSONResponse({"error": "bad_request"}, status_code=400)
    outcome = provider.receive_webhook(secret, body)  # type: ignore[union-attr]
    return JSONResponse({"ok": True, "outcome": outcome})


async def _body(request: Request) -> bytes | None:
    """The body, or None when it is bigger than any real delivery."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_HOOK_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
