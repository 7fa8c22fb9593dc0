"""Helpers for the fallback tests: a stand-in for the `local` tab and a Gemini fake that notes timings.

The real offline engine (`boothgate.providers.local`) is built on another branch. Until it is merged,
`local_classes()` registers `LocalStandIn` under "local"; once the real module exists it returns {} and
the tests run against the real engine unchanged (they use a `noir` style slot, which turns any photo
black and white, and assert only that).
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse

from boothgate.providers.base import Provider, ProviderRequest, ProviderResult
from boothgate.providers.registry import builtin_provider_class
from tests.fakes.gemini import GeminiFake, Received


class StandInOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    style: str = "noir"


class LocalStandIn(Provider):
    """Black and white on this machine, no key, no network; notes when each run started."""

    name = "local"
    label = "Offline"
    Options = StandInOptions
    started: ClassVar[list[float]] = []

    async def run(self, request: ProviderRequest) -> ProviderResult:
        self.started.append(time.monotonic())
        data = await asyncio.to_thread(_noir, request.photo.data)
        return ProviderResult(data, "image/jpeg", {"engine": "stand-in"})


def _noir(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        grey = image.convert("L").convert("RGB")
    out = io.BytesIO()
    grey.save(out, "JPEG", quality=90)
    return out.getvalue()


def local_classes() -> dict[str, type[Provider]]:
    """The stand-in only while the real offline engine is not part of this build."""
    return {"local": LocalStandIn} if builtin_provider_class("local") is None else {}


def is_black_and_white(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    spread = rgb.max(axis=-1) - rgb.min(axis=-1)
    return float(spread.mean()) < 6.0


def is_colourful(data: bytes) -> bool:
    return not is_black_and_white(data)


class TimedGeminiFake(GeminiFake):
    """The Gemini fake, noting when each request arrived and whether the client hung up on it."""

    def reset(self) -> None:
        super().reset()
        self.arrived: list[float] = []
        self.gone: list[float] = []

    async def _answer(self, mode: str, received: Received, request: Request) -> JSONResponse:
        self.arrived.append(time.monotonic())
        response = await super()._answer(mode, received, request)
        if response.status_code == 499:  # the fake's "client went away" answer
            self.gone.append(time.monotonic())
        return response


async def local_slot(booth: Any, number: int = 1) -> None:
    await booth.configure("local", number, kind="prompt", prompt="noir", options={"style": "noir"})
