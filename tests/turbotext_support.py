"""Shared pieces for the Turbotext tests: test images and "our side" (media links + webhook route)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from fastapi import FastAPI
from PIL import Image, ImageOps

from boothgate.providers.base import PreparedImage
from boothgate.records.media_links import MediaLinks
from boothgate.web import hooks, media


def jpeg(width: int, height: int, tint: tuple[int, int, int], seed: int = 0) -> bytes:
    """A gradient photo with noise in one dominant colour, so photo and reference are told apart."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = np.array(tint, dtype=float)[None, None, :]
    pixels = base * (0.5 + 0.25 * x + 0.25 * y) + rng.normal(0, 6, (height, width, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def prepared(data: bytes) -> PreparedImage:
    with Image.open(io.BytesIO(data)) as im:
        return PreparedImage(data, "image/jpeg", im.width, im.height)


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def mirrored(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.mirror(im.convert("RGB")), dtype=np.int16)


class OneProviderRegistry:
    """Stands in for the app's registry: the webhook route only asks it for the turbotext provider."""

    def __init__(self) -> None:
        self.providers: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        return self.providers.get(name)


class OurSide:
    """The routes Turbotext reaches on our server — the spine's real media route and the webhook
    route — over a stand-in for the app's services. `links` may be swapped between tests."""

    def __init__(self, public_base_url: str) -> None:
        self.links = MediaLinks(public_base_url)
        self.registry = OneProviderRegistry()
        self.app = FastAPI()
        self.app.state.services = self
        self.app.include_router(media.router)
        self.app.include_router(hooks.router)
