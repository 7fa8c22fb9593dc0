"""The floor for receiving and answering: parse the booth's multipart upload, answer fixed bytes.

Same framework layers our server uses (Starlette request parsing through python-multipart, which
spools big files to disk), same uvicorn, same answer size as the bench provider's result — and no
admission, preparation, provider, database or storage. Our server's overhead is compared to this.

Run as `python -m bench.echo --port N`.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bench.floor_server import floor_app, serve
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


app = floor_app(upload)


def main() -> None:
    serve(app, "bench echo endpoint", 8099)


if __name__ == "__main__":
    main()
