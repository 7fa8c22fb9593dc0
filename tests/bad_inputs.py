"""The corpus of bad booth requests: each a raw HTTP request and the answer `design.md` calls for.

Requests are bytes on a socket, not a client library's idea of a request, so a case can lie in its
Content-Length, send invalid UTF-8, NUL bytes, 10 000 fields or a body in chunks. `test_bad_input.py`
sends every case to one running server and checks status, error code, the data dir and that the
server still serves. The corpus server runs with small caps (see CORPUS_SETTINGS).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from boothgate.cli.booth_client import _read_response
from tests.conftest import UPLOAD_PASSWORD, make_jpeg, make_png

CORPUS_SETTINGS = {
    "max_upload_bytes": 2_000_000,
    "max_image_pixels": 20_000_000,
    "deadline_seconds": 5.0,
    "upload_idle_timeout_seconds": 2.0,
    "auth_max_failures": 1000,
    "unauthenticated_records_per_minute": 1000,  # every request of the corpus is a job in the statistics
}
BOUNDARY = "------------090306000104030805010400"
ESCAPE_MARKER = "boothgate-escape-4f1c"


# ---------------------------------------------------------------- raw HTTP
@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    got_continue: bool = False


async def exchange(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
    content_length: int | None = None,
    expect_continue: bool = True,
    timeout: float = 15.0,
    local_address: str | None = None,
) -> RawAnswer:
    """Send one POST exactly as given and read the answer (like the booth: Expect: 100-continue).
    `local_address`: the client socket's source address (another loopback address, say 127.0.0.2)."""
    head = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    if chunked:
        head["Transfer-Encoding"] = "chunked"
    else:
        head["Content-Length"] = str(len(body) if content_length is None else content_length)
    if expect_continue:
        head["Expect"] = "100-continue"
    raw = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
    async with asyncio.timeout(timeout):
        local = None if local_address is None else (local_address, 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        try:
            writer.write(raw.encode("latin-1"))
            await writer.drain()
            got_continue = False
            if expect_continue:
                try:
                    async with asyncio.timeout(1.0):
                        status, answer_headers, answer_body = await _read_response(reader)
                    if status != 100:
                        return RawAnswer(status, answer_headers, answer_body)
                    got_continue = True
                except TimeoutError:
                    pass
            with contextlib.suppress(ConnectionError):
                await _send_body(writer, body, chunked)
            status, answer_headers, answer_body = await _read_response(reader)
            while status == 100:
                status, answer_headers, answer_body = await _read_response(reader)
            return RawAnswer(status, answer_headers, answer_body, got_continue)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _send_body(writer: asyncio.StreamWriter, body: bytes, chunked: bool) -> None:
    for start in range(0, len(body), 65536):
        chunk = body[start : start + 65536]
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


# ---------------------------------------------------------------- multipart as bytes
Part = tuple[bytes, bytes | None, bytes]  # (name, filename or None, value)

DSLR_FIELDS: list[Part] = [
    (b"time", None, b"1758217512"),
    (b"user_id", None, b"Acer"),
    (b"id", None, b"CY04N068111304S2L_00000001."),
    (b"hash", None, b"7b6c683e1d3fd29c8701791c54e3c12a236f5a5b"),
    (b"version", None, b"3.30.2"),
]


def multipart(parts: list[Part], boundary: str = BOUNDARY) -> bytes:
    out = []
    for name, filename, value in parts:
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        out.append(b"--" + boundary.encode() + b"\r\nContent-Disposition: " + disposition + b"\r\n")
        if filename is not None:
            out.append(b"Content-Type: image/jpeg\r\n")
        out.append(b"\r\n" + value + b"\r\n")
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out)


def booth_form(
    photo: bytes | None,
    *,
    password: bytes = UPLOAD_PASSWORD.encode(),
    extra: list[Part] | None = None,
    filename: bytes = b"IMG_0003.JPG",
) -> bytes:
    parts = [*DSLR_FIELDS, *(extra or []), (b"password", None, password)]
    if photo is not None:
        parts.append((b"fileToUpload", filename, photo))
    return multipart(parts)


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


# ---------------------------------------------------------------- crafted images
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header declares width × height pixels (a decompression bomb)."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b"")


def png_broken_ihdr() -> bytes:
    """A PNG whose IHDR chunk length is zero (found by Hypothesis: Pillow raised ValueError, a 500)."""
    data = bytearray(make_png(40, 30))
    data[11] = 0
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG with its SOF frame header patched to declare width × height."""
    data = bytearray(make_jpeg(64, 48, seed=5))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def jpeg_with_app1(payload: bytes) -> bytes:
    """A real JPEG with an APP1 'Exif' segment holding `payload` (whatever it is) right after SOI."""
    photo = make_jpeg(120, 90, seed=6)
    segment = b"Exif\x00\x00" + payload
    return photo[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + photo[2:]


def _ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0, count: int | None = None) -> bytes:
    body = struct.pack("<H", len(entries) if count is None else count)
    for tag, kind, n, value in entries:
        body += struct.pack("<HHI", tag, kind, n) + value.ljust(4, b"\x00")
    return body + struct.pack("<I", next_ifd)


TIFF_LE = b"II*\x00" + struct.pack("<I", 8)
CORRUPT_EXIF = {
    "garbage after the Exif header": b"\x13\x37" * 40,
    "IFD offset far beyond the segment": b"II*\x00" + struct.pack("<I", 0xFFFFFFF0),
    "65535 entries declared, none present": TIFF_LE + _ifd([], count=0xFFFF),
    "orientation value out of range": TIFF_LE + _ifd([(0x0112, 3, 1, struct.pack("<H", 99))]),
    "orientation as a long array pointing nowhere": TIFF_LE + _ifd([(0x0112, 4, 1000, struct.pack("<I", 0x7FFFFFFF))]),
    "IFD chain that loops to itself": TIFF_LE + _ifd([(0x0112, 3, 1, struct.pack("<H", 6))], next_ifd=8),
    "Exif sub-IFD pointing into itself": TIFF_LE + _ifd([(0x8769, 4, 1, struct.pack("<I", 8))]),
    "truncated in the middle of an entry": TIFF_LE + _ifd([(0x0112, 3, 1, struct.pack("<H", 6))])[:7],
}


def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(buf, "GIF")
    return buf.getvalue()


# ---------------------------------------------------------------- the corpus
@dataclass
class Case:
    name: str
    status: int
    code: str | None  # the JSON "error"; None: a 200 image, or a status from routing with its own body
    body: Callable[[], bytes]
    headers: dict[str, str] = field(default_factory=lambda: dict(MULTIPART))
    path: str = "/booth/gemini/1"
    chunked: bool = False
    content_length: int | None = None


def _ten_thousand_fields() -> bytes:
    return booth_form(make_jpeg(64, 48), extra=[(f"survey{i}".encode(), None, b"x") for i in range(10_000)])


def _lying_length_body() -> bytes:
    return booth_form(make_jpeg(600, 400, seed=7, quality=95))


TRAVERSAL_NAME = f"../../../../../../tmp/{ESCAPE_MARKER}\x00.jpg/..\\..\\{ESCAPE_MARKER}.jpg".encode()

CORPUS: list[Case] = [
    Case("empty body", 400, "upload_incomplete", lambda: b""),
    Case("empty body, no content type", 400, "bad_multipart", lambda: b"", headers={}),
    Case(
        "JSON instead of multipart",
        400,
        "bad_multipart",
        lambda: b'{"photo": 1}',
        headers={"Content-Type": "application/json"},
    ),
    Case(
        "multipart without boundary",
        400,
        "bad_multipart",
        lambda: booth_form(make_jpeg(64, 48)),
        headers={"Content-Type": "multipart/form-data"},
    ),
    Case("garbage with a boundary header", 400, "bad_multipart", lambda: b"\x00\xff garbage \r\n" * 50),
    Case(
        "body ends before the closing boundary", 400, "upload_incomplete", lambda: booth_form(make_jpeg(64, 48))[:-40]
    ),
    Case(
        "a part without a name",
        400,
        "bad_multipart",
        lambda: f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
    ),
    Case("no file field", 400, "no_file", lambda: booth_form(None)),
    # One file part is the photo whatever its name (issue 28); two with names that say nothing cannot be told apart.
    Case(
        "two photos in unknown field names",
        400,
        "ambiguous_file",
        lambda: multipart(
            [
                *DSLR_FIELDS,
                (b"password", None, UPLOAD_PASSWORD.encode()),
                (b"upload1", b"a.jpg", make_jpeg(64, 48)),
                (b"upload2", b"b.jpg", make_jpeg(64, 48)),
            ]
        ),
    ),
    Case("zero-byte file", 400, "empty_file", lambda: booth_form(b"")),
    Case("text file named .jpg", 415, "unsupported_image", lambda: booth_form(b"just some text\n" * 20)),
    Case("HTML named .png", 415, "unsupported_image", lambda: booth_form(b"<!doctype html><p>hi", filename=b"x.png")),
    Case("GIF", 415, "unsupported_image", lambda: booth_form(gif())),
    Case("HEIC", 415, "heic_unsupported", lambda: booth_form(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 200)),
    Case("JPEG magic and nothing else", 422, "corrupt_image", lambda: booth_form(b"\xff\xd8\xff\xe0" + b"\x00" * 10)),
    Case("truncated JPEG", 422, "corrupt_image", lambda: booth_form(make_jpeg(400, 300, seed=8)[:3000])),
    Case("truncated PNG", 422, "corrupt_image", lambda: booth_form(make_png(200, 150)[:2000])),
    Case("PNG whose header chunk declares no length", 422, "corrupt_image", lambda: booth_form(png_broken_ihdr())),
    *[
        Case(f"JPEG with corrupt EXIF: {what}", 200, None, lambda p=payload: booth_form(jpeg_with_app1(p)))
        for what, payload in CORRUPT_EXIF.items()
    ],
    Case(
        "PNG bomb declaring 100 000 × 100 000",
        413,
        "image_too_large",
        lambda: booth_form(png_declaring(100_000, 100_000)),
    ),
    Case(
        "PNG declaring just over the pixel cap", 413, "image_too_large", lambda: booth_form(png_declaring(5000, 4001))
    ),
    Case("JPEG declaring 65 000 × 65 000", 413, "image_too_large", lambda: booth_form(jpeg_declaring(65_000, 65_000))),
    Case("over the cap, honest Content-Length", 413, "too_large", lambda: b"\x00" * 2_100_000),
    Case(
        "over the cap, chunked without a length",
        413,
        "too_large",
        lambda: booth_form(b"\xff\xd8\xff" + b"\x00" * 2_100_000),
        chunked=True,
    ),
    Case(
        "Content-Length claims less than is sent", 400, "upload_incomplete", _lying_length_body, content_length=20_000
    ),
    Case(
        "filename with ../ and NUL bytes",
        200,
        None,
        lambda: booth_form(make_jpeg(64, 48, seed=9), filename=TRAVERSAL_NAME),
    ),
    Case("10 000 form fields", 400, "too_many_fields", _ten_thousand_fields),
    Case(
        "a 1 MB field value",
        413,
        "field_too_large",
        lambda: booth_form(make_jpeg(64, 48), extra=[(b"profile", None, b"A" * 1_000_000)]),
    ),
    Case(
        "a part header of 100 kB",
        400,
        "bad_multipart",
        lambda: booth_form(make_jpeg(64, 48), extra=[(b"x" * 100_000, None, b"v")]),
    ),
    Case(
        "invalid UTF-8 in field names and values",
        200,
        None,
        lambda: booth_form(
            make_jpeg(64, 48, seed=10),
            extra=[(b"na\xffme", None, b"\xc3\x28 \xa0\xa1 ok"), (b"user", None, b"\xed\xa0\x80")],
        ),
    ),
    Case(
        "invalid UTF-8 password",
        401,
        "unauthorized",
        lambda: booth_form(make_jpeg(64, 48, seed=11), password=b"\xff\xfe" + UPLOAD_PASSWORD.encode()),
    ),
    Case(
        "NUL bytes in fields",
        200,
        None,
        lambda: booth_form(make_jpeg(64, 48, seed=12), extra=[(b"id\x00", None, b"a\x00b")]),
    ),
    Case(
        "the file field twice (the first counts)",
        200,
        None,
        lambda: (
            booth_form(make_jpeg(64, 48, seed=13))[: -len(BOUNDARY) - 6]
            + multipart([(b"fileToUpload", b"b.jpg", b"second")])
        ),
    ),
    Case(
        "traversal in the provider segment",
        404,
        "slot_not_found",
        lambda: booth_form(make_jpeg(64, 48)),
        path="/booth/..%252F..%252Fetc%252Fpasswd/1",
    ),
    Case(
        "encoded slashes that leave the upload route",
        404,
        None,
        lambda: booth_form(make_jpeg(64, 48)),
        path="/booth/..%2F..%2Fetc%2Fpasswd/1",
    ),
    Case(
        "slot number out of range",
        404,
        "slot_not_found",
        lambda: booth_form(make_jpeg(64, 48)),
        path="/booth/gemini/99999999999999999999",
    ),
]
