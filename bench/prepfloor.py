"""The floor for preparing: a minimal server doing only the work a booth photo needs.

It receives the same upload (Starlette's multipart parser spools it to disk), DCT-scale-decodes it with
Pillow to about the provider's pixel target (the same "no resize when a DCT scale is within reach" choice
as our server, so the floor is no slower than we are by construction), encodes the JPEG the provider would
get (into an in-memory file, with the GIL released, as our server does), waits the fake provider's latency
and answers the same canned result. No password, database, trash, statistics, duplicate check, limits or
worker processes: decodes run in a thread pool of one thread per core. Our server's overhead is compared to
this, in the same run.

Run as `python -m bench.prepfloor --port N`; `BOOTHGATE_BENCH_PROVIDER_SECONDS` sets the latency.
"""

from __future__ import annotations

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from PIL import Image
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bench.floor_server import floor_app, serve
from bench.provider import result_jpeg

INPUT_PIXELS = 2_000_000
REACH = 0.7
POOL = ThreadPoolExecutor(os.cpu_count() or 2)


def prepare(fh: IO[bytes]) -> bytes:
    with Image.open(fh) as im:
        w, h = im.size
        size = None
        for denom in (8, 4, 2):
            sw, sh = -(-w // denom), -(-h // denom)
            if REACH * INPUT_PIXELS <= sw * sh <= INPUT_PIXELS:
                size = (w // denom, h // denom)
                break
        if size is None:
            scale = (INPUT_PIXELS / (w * h)) ** 0.5
            size = (int(w * scale), int(h * scale))
        im.draft("RGB", size)
        out = im.convert("RGB")
        if out.width * out.height > INPUT_PIXELS:
            out = out.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        return _saved(out)


def _saved(out: Image.Image) -> bytes:
    """The JPEG's bytes, encoded into an anonymous in-memory file where the system has one: Pillow then
    encodes with the GIL released (into a BytesIO it holds it), as our server does (`images.saved`)."""
    create = getattr(os, "memfd_create", None)
    if create is None:
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=90)
        return buf.getvalue()
    with open(create("prepfloor-encode", os.MFD_CLOEXEC), "w+b") as fh:
        out.save(fh, "JPEG", quality=90)
        fh.flush()
        fh.seek(0)
        return fh.read()


async def upload(request: Request) -> Response:
    async with request.form(max_part_size=64 * 1024 * 1024) as form:
        photo = form.get("fileToUpload") or form.get("file")
        if not isinstance(photo, UploadFile):
            return JSONResponse({"error": "bad_request"}, status_code=400)
        await photo.seek(0)
        await asyncio.get_running_loop().run_in_executor(POOL, prepare, photo.file)
    await asyncio.sleep(float(os.environ.get("BOOTHGATE_BENCH_PROVIDER_SECONDS", "1.0")))
    return Response(result_jpeg(), media_type="image/jpeg")


app = floor_app(upload)


def main() -> None:
    result_jpeg()
    serve(app, "bench preparation floor", 8098)


if __name__ == "__main__":
    main()
