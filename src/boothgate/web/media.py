"""Short-lived public media links (`/media/<token>.<ext>`) for providers that download inputs."""

from __future__ import annotations

from fastapi import APIRouter, Response

from boothgate.web.deps import ServicesDep

router = APIRouter()


@router.get("/media/{name}")
async def media(name: str, services: ServicesDep) -> Response:
    image = services.links.get(name) or await services.links.fetch(name)  # made by another node (bucket)
    if image is None:
        return Response(b"Not found", status_code=404, media_type="text/plain")
    return Response(
        image.data,
        media_type=image.mime,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"},
    )
