"""What the two floors (`bench/echo.py`, `bench/prepfloor.py`) share: the booth route beside `/health`, and the
command line that serves them with uvicorn as quietly as our server runs in the bench."""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def floor_app(upload: Callable[[Request], Awaitable[Response]]) -> Starlette:
    return Starlette(
        routes=[
            Route("/booth/{provider}/{number}", upload, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def serve(app: Starlette, description: str, default_port: int) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", str(default_port))))
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
