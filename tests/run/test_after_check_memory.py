"""The NSFW check after the AI decodes nothing large in the server (issue 31, class 3): an `as_returned`
transparent PNG result of tens of megapixels (a few hundred kB on the wire) is made small in an image
worker first. The server process's peak memory (VmHWM, reset before the request) stays near idle."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any, ClassVar

import pytest

from boothgate.providers.base import Provider, ProviderRequest, ProviderResult
from tests.conftest import Booth, make_jpeg
from tests.imaging.test_image_limits import _png_chunk

MB = 1024 * 1024


def transparent_png(width: int, height: int, value: int) -> bytes:
    """A valid RGBA PNG of `width`×`height`, flat so it compresses to a few hundred kB."""
    row = b"\x00" + bytes([value, value // 2, 255 - value, 128]) * width
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


class BigPngProvider(Provider):
    name = "gemini"
    label = "Big PNG"
    result: ClassVar[bytes] = b""

    async def run(self, request: ProviderRequest) -> ProviderResult:
        return ProviderResult(self.result, "image/png", {"model": "big"})


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():  # a few hundred bytes of procfs
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


@pytest.mark.parametrize(("width", "height"), [(9000, 9000), (12000, 6000)])
async def test_the_after_check_never_decodes_a_large_result_in_the_server(
    booth_factory: Any, width: int, height: int
) -> None:
    BigPngProvider.result = transparent_png(width, height, value=width % 200)
    assert len(BigPngProvider.result) < 2 * MB
    booth: Booth = booth_factory({"gemini": BigPngProvider}, deadline_seconds=30.0)
    check = {"before": False, "after": True, "threshold": 0.99, "on_hit": "mask"}
    await booth.configure("gemini", 1, prompt="x", result_shape="as_returned", output_format="png", moderation=check)
    Path("/proc/self/clear_refs").write_text("5")  # noqa: ASYNC240 (resets the peak, VmHWM, to the current size)
    idle = _status("VmRSS")
    answer = await booth.post("gemini", 1, make_jpeg(640, 480, seed=width))
    peak = _status("VmHWM")
    assert answer.status == 200, answer.body[:300]
    assert peak - idle < 120 * MB, f"the server grew by {(peak - idle) / MB:.0f} MB"
