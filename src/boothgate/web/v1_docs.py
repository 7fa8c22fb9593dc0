"""The client API's OpenAPI examples and shapes (web/v1.py's routes show them on /api/v1/openapi.json):
a job, an accepted job, a batch, the error body, the image answer, the progress stream, the multipart bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from boothgate import __version__

SSE_EXAMPLE = 'event: progress\nid: 1\ndata: {"stage": "preparing", "progress": 10, "seq": 1}\n\n'

ERROR_EXAMPLE = {"error": "slot_not_found", "message": "There is no slot gemini/21."}
JOB_EXAMPLE = {
    "id": "3f2b9c0e6d5a4e1f9b8c7d6e5f4a3b2c",
    "slot": "gemini/3",
    "status": "at_provider",
    "progress": 30,
    "created_at": "2026-12-02T13:40:00+00:00",
    "finished_at": None,
    "error": None,
    "message": None,
    "http_status": None,
    "timings": {},
    "cost_usd": None,
    "served_by": None,
    "batch_id": None,
    "status_url": "/api/v1/jobs/3f2b9c0e6d5a4e1f9b8c7d6e5f4a3b2c",
    "result_url": "/api/v1/jobs/3f2b9c0e6d5a4e1f9b8c7d6e5f4a3b2c/result",
    "events_url": "/api/v1/jobs/3f2b9c0e6d5a4e1f9b8c7d6e5f4a3b2c/events",
}
ACCEPTED_EXAMPLE = {k: JOB_EXAMPLE[k] for k in ("id", "status_url", "result_url", "events_url")} | {"status": "queued"}
BATCH_EXAMPLE = {
    "id": "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
    "slot": "gemini/3",
    "status": "running",
    "total": 40,
    "done": 12,
    "failed": 1,
    "pending": 27,
    "created_at": "2026-12-02T13:40:00+00:00",
    "finished_at": None,
    "status_url": "/api/v1/batches/9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
    "zip_url": "/api/v1/batches/9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d/zip",
}


def shown(example: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    401: shown({"error": "unauthorized", "message": "Send a valid API key in the X-API-Key header."}, "No valid key"),
    429: shown(
        {"error": "rate_limited", "message": "This key may send 60 requests per minute; wait for the next minute."},
        "Over the key's limit (Retry-After, X-RateLimit-*)",
    ),
}
IMAGE = {"description": "The result image", "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}


def multipart_body(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": {"type": "object", "properties": fields, "required": required}}
            },
        }
    }


_document: dict[str, Any] | None = None


def document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of the client API's routes alone (built once), with the key's security scheme."""
    global _document
    if _document is None:
        built = get_openapi(
            title="boothgate client API",
            version=f"1 (server {__version__})",
            description="Jobs, batches and progress for kiosk apps, bots and scripts. Send the key in `X-API-Key`. "
            "Limits answer 429 with `Retry-After` and `X-RateLimit-Limit`, `X-RateLimit-Remaining`, "
            "`X-RateLimit-Reset` (Unix seconds).",
            routes=routes,
        )
        built.setdefault("components", {})["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        }
        built["security"] = [{"ApiKey": []}]
        _document = built
    return _document
