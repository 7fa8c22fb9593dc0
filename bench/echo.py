"""The floor for receiving and answering: parse the booth's multipart upload, answer fixed bytes.

Same framework layers our server uses (Starlette request parsing through python-multipart, which
spools big files to disk), same uvicorn, same answer size as the bench provider's result — and no
admission, preparation, provider, database or storage. Our server's overhead is compared to this.

Run as `python -m bench.echo --port N`.
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.provider import result_jpeg


async def upload(request: Request) -> Response:
    async with request.form(max_part_size=64 * 1024 * 1024) as form:
        photo = form.get("fileToUpload") or form.get("file")
        if not isinstance(photo, UploadFile):
            return JSONResponse({"error": "bad_request"}, status_code=400)
        # Touch the whole upload once, as any server that stores it does.
        await photo.seek(0)
        while await photo.read(1024 * 1024):
            pass
    return Response(result_jpeg(), media_type="image/jpeg")


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/booth/{provider}/{number}", upload, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description="bench echo endpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8099")))
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
