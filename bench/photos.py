"""Realistic booth photos for the benchmark, made deterministically and cached under `bench-data/`.

JPEG cost depends on content: a flat test card compresses to a few hundred kilobytes and decodes far
faster than a camera photo. So the scene has what a DSLR photo has — smooth light falloff, objects
with edges, fine texture at every scale (1/f noise, like fabric, hair and foliage) and per-pixel
sensor noise with some chroma noise — tuned so a 24 MP JPEG at quality 95 weighs ~8–12 MB.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DATA_DIR = Path(__file__).resolve().parent.parent / "bench-data"
# Bumped whenever the generator changes, so a stale cache is never measured.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class PhotoSpec:
    """One test photo: name, size and format (jpeg, or png with an alpha channel)."""

    name: str
    width: int
    height: int
    fmt: str
    quality: int = 95
    luma_noise: float = 4.2  # per-pixel sensor noise (standard deviation, 8-bit levels)
    chroma_noise: float = 2.5  # colour noise on 2×2 blocks

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def filename(self) -> str:
        ext = "jpg" if self.fmt == "jpeg" else "png"
        return f"{self.name}-{self.width}x{self.height}-v{GENERATOR_VERSION}.{ext}"


# 24 MP is a full-frame or APS-C DSLR frame (3:2); 12 MP a smaller camera; 2 MP a booth that shrinks
# before sending. The PNG is what the booth sends when its own background removal is on. "noisy" is the
# same 24 MP frame shot at ISO 3200 in a dark ballroom: heavy grain, which JPEG cannot compress away (quality
# 92 still weighs ~11 MB), and whose entropy-coded data costs every byte-wise step more.
SPECS = {
    "24mp": PhotoSpec("24mp", 6000, 4000, "jpeg"),
    "noisy": PhotoSpec("noisy", 6000, 4000, "jpeg", quality=92, luma_noise=10.0, chroma_noise=5.0),
    "12mp": PhotoSpec("12mp", 4240, 2832, "jpeg"),
    "2mp": PhotoSpec("2mp", 1728, 1152, "jpeg"),
    "png": PhotoSpec("png", 2400, 1600, "png"),
}


def _octave_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Luma texture at every scale (amplitude falling with frequency, like natural images), float32."""
    out = np.zeros((height, width), np.float32)
    cell = 4
    while cell < max(width, height) // 2:
        gw, gh = max(2, width // cell + 2), max(2, height // cell + 2)
        grid = Image.fromarray(rng.normal(0.0, 1.0, (gh, gw)).astype(np.float32), mode="F")
        layer = grid.resize((width, height), Image.Resampling.BICUBIC)
        # Fine scales follow a 1/f spectrum (amplitude grows like the square root of the cell size);
        # coarse scales are capped so the lighting stays a photo's, not clouds.
        out += np.asarray(layer, np.float32) * min(1.6 * math.sqrt(cell), 6.0)
        cell *= 2
    return out


def _scene(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Image.Image]:
    """Backdrop with light falloff and a few people-like shapes with hard edges; and the people's mask."""
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width * 0.5, height * 0.45
    falloff = 1.0 - 0.45 * (((gx - cx) / width) ** 2 + ((gy - cy) / height) ** 2)
    base = np.stack([falloff * c for c in (150.0, 135.0, 120.0)], axis=-1)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    mask = Image.new("L", (width, height), 0)
    mask_draw = ImageDraw.Draw(mask)
    for _ in range(4):  # bodies and heads
        x = float(rng.uniform(0.1, 0.9)) * width
        body = tuple(int(v) for v in rng.integers(30, 200, 3))
        skin = tuple(int(v) for v in rng.integers(150, 230, 3))
        w, h = width * 0.16, height * 0.55
        r = width * 0.045
        hy = height - h - r * 0.9
        for d, body_fill, skin_fill in ((draw, body, skin), (mask_draw, 255, 255)):
            d.rounded_rectangle((x - w / 2, height - h, x + w / 2, height * 1.1), radius=int(w / 3), fill=body_fill)
            d.ellipse((x - r, hy - r * 1.25, x + r, hy + r * 1.25), fill=skin_fill)
    for _ in range(30):  # props, frames, lettering-sized details
        x0, y0 = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        size = float(rng.uniform(0.005, 0.06)) * width
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.rectangle((x0, y0, x0 + size, y0 + size * float(rng.uniform(0.2, 2))), outline=color, width=3)
    # Lens softness: real edges are a pixel or two wide, not aliased steps.
    return im.filter(ImageFilter.GaussianBlur(1.2)), mask


def render(spec: PhotoSpec, seed: int = 2024) -> Image.Image:
    """The photo's pixels (RGB, or RGBA for the PNG spec); deterministic for a seed."""
    rng = np.random.default_rng(seed)
    w, h = spec.width, spec.height
    scene, people = _scene(rng, w, h)
    pixels = np.asarray(scene, np.float32)
    pixels += _octave_noise(rng, w, h)[..., None]
    # Sensor noise: luma noise on every pixel plus weaker, slightly blurred chroma noise.
    pixels += rng.standard_normal((h, w, 1), np.float32) * spec.luma_noise
    chroma = rng.standard_normal((h // 2, w // 2, 3), np.float32) * spec.chroma_noise
    pixels += np.repeat(np.repeat(chroma, 2, axis=0), 2, axis=1)[:h, :w]
    rgb = np.clip(pixels, 0, 255).astype(np.uint8)
    if spec.fmt != "png":
        return Image.fromarray(rgb, "RGB")
    # Background removal: people opaque, backdrop transparent, a soft edge in between.
    alpha = people.filter(ImageFilter.GaussianBlur(2))
    im = Image.fromarray(rgb, "RGB")
    im.putalpha(alpha)
    return im


def encode(spec: PhotoSpec, im: Image.Image) -> bytes:
    buf = io.BytesIO()
    if spec.fmt == "png":
        im.save(buf, "PNG", compress_level=6)
    else:
        exif = Image.Exif()
        exif[0x010F] = "Canon"  # Make
        exif[0x0110] = "Canon EOS 2000D"  # Model
        exif[0x0112] = 1  # Orientation: upright
        im.save(buf, "JPEG", quality=spec.quality, subsampling="4:2:0", exif=exif)
    return buf.getvalue()


def photo_path(name: str, data_dir: Path | None = None) -> Path:
    """The cached file for a spec name, generated on first use."""
    spec = SPECS[name]
    data_dir = data_dir or DATA_DIR
    path = data_dir / spec.filename
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(encode(spec, render(spec)))
        tmp.replace(path)  # never leave a half-written photo in the cache
    return path


def photo_bytes(name: str, data_dir: Path | None = None) -> bytes:
    return photo_path(name, data_dir).read_bytes()


def main() -> None:
    for name, spec in SPECS.items():
        path = photo_path(name)
        print(f"{name:5} {spec.width}x{spec.height} {spec.fmt:4} {path.stat().st_size / 1e6:6.2f} MB  {path}")


if __name__ == "__main__":
    main()
