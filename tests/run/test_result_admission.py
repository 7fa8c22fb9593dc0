"""One admission check for every result, whatever happens to it next (issue 31, class 2): a tiny result
declaring ~200 MP is refused from its headers as `provider_bad_response` on the default shape
(`match_photo`, which reshapes it in a worker) as on every other path — and the fallback serves."""

from __future__ import annotations

import io
import struct
from typing import Any, ClassVar

import pytest
from PIL import Image

from boothgate.providers.base import Provider, ProviderRequest, ProviderResult
from tests.conftest import Booth, ScriptedProvider, make_jpeg
from tests.imaging.test_image_limits import huge_png

SIDE = 14_200  # 14,200 × 14,200 ≈ 202 million pixels


def declared_jpeg(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header declares `width` × `height` (a few kB on the wire)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 140, 200)).save(out, "JPEG", quality=80)
    data = bytearray(out.getvalue())
    at = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


class DeclaredHugeProvider(Provider):
    name = "gemini"
    label = "Huge"
    results: ClassVar[dict[int, tuple[bytes, str]]] = {}

    async def run(self, request: ProviderRequest) -> ProviderResult:
        data, mime = self.results[int(request.prompt)]
        return ProviderResult(data, mime, {"model": "huge"})


@pytest.fixture
def booth(booth_factory: Any) -> Booth:
    DeclaredHugeProvider.results = {
        1: (huge_png(SIDE), "image/png"),
        2: (declared_jpeg(SIDE, SIDE), "image/jpeg"),
        3: (declared_jpeg(20_000, 10_500), "image/jpeg"),
    }
    result: Booth = booth_factory(
        {"gemini": DeclaredHugeProvider, "openai": ScriptedProvider}, deadline_seconds=8.0, fallback_default_seconds=2.0
    )
    return result


@pytest.mark.parametrize("case", [1, 2, 3])
async def test_a_result_declaring_200_megapixels_on_the_default_shape_is_refused_and_the_fallback_serves(
    booth: Booth, case: int
) -> None:
    await booth.configure("openai", case, kind="prompt", prompt="x")
    await booth.configure("gemini", case, kind="prompt", prompt=str(case))  # the default shape: match_photo
    alone = await booth.post("gemini", case, make_jpeg(800, 600, seed=case))
    assert alone.status == 502, alone.body[:300]
    assert alone.json()["error"] == "provider_bad_response"

    await booth.configure("gemini", 10 + case, kind="prompt", prompt=str(case), fallback=f"openai/{case}")
    DeclaredHugeProvider.results[10 + case] = DeclaredHugeProvider.results[case]
    served = await booth.post("gemini", 10 + case, make_jpeg(800, 600, seed=20 + case))
    assert served.status == 200, served.body[:300]
