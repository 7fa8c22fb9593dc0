"""What it costs to prepare one photo for the provider, candidate by candidate.

Every candidate turns the same spooled file into an upright JPEG of at most `provider_input_pixels`:

- naive: full-size decode, then a high-quality (LANCZOS) resize — what the obvious code costs;
- pillow-draft: `boothgate.imaging.images.prepare` (libjpeg DCT scaling through Pillow's draft mode; no resize when
  a DCT scale is within reach of the target);
- simplejpeg: libjpeg-turbo's scaled decode through simplejpeg with the same scale choice, Pillow for a
  resize when one is needed;
- pyvips: libvips' `thumbnail` (shrink-on-load), with one worker thread and with its default pool.

Each runs in its own process, so its peak memory (VmHWM) is its own and no cache is shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.photos import photo_path

INPUT_PIXELS = 2_000_000  # the default BOOTHGATE_PROVIDER_INPUT_PIXELS
QUALITY = 90  # the default BOOTHGATE_JPEG_QUALITY
SOURCE_LIMIT = 100_000_000


def _target(width: int, height: int) -> tuple[int, int]:
    from boothgate.imaging.images import target_size

    return target_size(width, height, INPUT_PIXELS)


def naive(path: Path) -> bytes:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        im = im.convert("RGB").resize(_target(*im.size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


def pillow_draft(path: Path) -> bytes:
    from boothgate.imaging.images import prepare

    return prepare(path, INPUT_PIXELS, SOURCE_LIMIT, QUALITY).data


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def simplejpeg_scaled(path: Path) -> bytes:
    import simplejpeg

    from boothgate.imaging.images import draft_size

    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as header:  # header only: size and EXIF orientation
        orientation = header.getexif().get(0x0112, 1)
        tw, th = _target(*header.size)
        # the same choice as ours: a DCT scale within reach of the target is final (no resize)
        (dw, dh), final = draft_size(*header.size, INPUT_PIXELS)
    if final:
        tw, th = dw, dh
    pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=tw, min_height=th)
    im = Image.fromarray(pixels)
    if not final and im.size != (tw, th):
        im = im.resize((tw, th), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if orientation in _TRANSPOSE:  # rotate the small image, not the big one
        im = im.transpose(_TRANSPOSE[orientation])
    out = np.asarray(im)
    # 4:2:0 like Pillow's default (simplejpeg defaults to 4:4:4: bigger and slower)
    return bytes(simplejpeg.encode_jpeg(out, quality=QUALITY, colorspace="RGB", colorsubsampling="420"))


def pyvips_thumbnail(path: Path) -> bytes:
    import pyvips

    with Image.open(path) as header:
        tw, th = _target(*header.size)
    thumb = pyvips.Image.thumbnail(str(path), tw, height=th, size="down")
    return bytes(thumb.jpegsave_buffer(Q=QUALITY))


CANDIDATES: dict[str, Callable[[Path], bytes]] = {
    "naive": naive,
    "pillow-draft": pillow_draft,
    "simplejpeg": simplejpeg_scaled,
    "pyvips-1thread": pyvips_thumbnail,
    "pyvips": pyvips_thumbnail,
}
# Extra environment per candidate (set before the library loads).
CANDIDATE_ENV = {"pyvips-1thread": {"VIPS_CONCURRENCY": "1"}}


@dataclass
class Measurement:
    name: str
    wall_ms: float  # median
    cpu_ms: float  # median; all threads of the process
    output_bytes: int
    width: int
    height: int
    peak_rss_mb: float
    psnr_vs_naive: float | None = None
    error: str | None = None


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure_here(name: str, path: Path, repeats: int) -> Measurement:
    """Run one candidate `repeats` times in this process (after one warm-up) and summarise."""
    func = CANDIDATES[name]
    out = func(path)  # warm-up: imports, page cache, library init
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = func(path)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    with Image.open(io.BytesIO(out)) as im:
        width, height = im.size
    return Measurement(
        name,
        statistics.median(walls) * 1000,
        statistics.median(cpus) * 1000,
        len(out),
        width,
        height,
        _vm_hwm_mb(),
    )


def _psnr(a: bytes, b: bytes) -> float:
    with Image.open(io.BytesIO(a)) as ia, Image.open(io.BytesIO(b)) as ib:
        x = np.asarray(ia.convert("RGB"), np.float32)
        y = np.asarray(ib.convert("RGB").resize(ia.size, Image.Resampling.BILINEAR), np.float32)
    mse = float(np.mean((x - y) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def measure_all(photo: str = "24mp", repeats: int = 5) -> list[Measurement]:
    """Every candidate in its own process; PSNR of each output against the naive one."""
    path = photo_path(photo)
    results = []
    for name in CANDIDATES:
        env = {**os.environ, **CANDIDATE_ENV.get(name, {})}
        cmd = [
            sys.executable,
            "-m",
            "bench.prepare",
            "--one",
            name,
            "--photo",
            photo,
            "--repeats",
            str(repeats),
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            error = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            results.append(Measurement(name, 0, 0, 0, 0, 0, 0, error=error))
            continue
        results.append(Measurement(**json.loads(proc.stdout.strip().splitlines()[-1])))
    reference = CANDIDATES["naive"](path)
    for m in results:
        if m.error is None and m.name != "naive":
            m.psnr_vs_naive = _psnr(reference, CANDIDATES[m.name](path))
    return results


def table(results: list[Measurement], upload_bytes: int) -> list[str]:
    naive_ms = next((m.cpu_ms for m in results if m.name == "naive" and m.error is None), 0.0)
    header = "| candidate | wall ms | CPU ms | CPU vs naive | output | sent / upload | peak RSS | PSNR vs naive |"
    lines = [header, "|---|---:|---:|---:|---|---:|---:|---:|"]
    for m in results:
        if m.error:
            lines.append(f"| {m.name} | — | — | — | failed: {m.error} | — | — | — |")
            continue
        ratio = f"{m.cpu_ms / naive_ms:.0%}" if naive_ms else "—"
        psnr = f"{m.psnr_vs_naive:.1f} dB" if m.psnr_vs_naive is not None else "(reference)"
        lines.append(
            f"| {m.name} | {m.wall_ms:.0f} | {m.cpu_ms:.0f} | {ratio} | {m.width}×{m.height} "
            f"{m.output_bytes / 1e3:.0f} kB | {m.output_bytes / upload_bytes:.1%} | {m.peak_rss_mb:.0f} MB "
            f"| {psnr} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=list(CANDIDATES), help="measure one candidate here (internal)")
    parser.add_argument("--photo", default="24mp")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.one:
        m = measure_here(args.one, photo_path(args.photo), args.repeats)
        print(json.dumps(m.__dict__))
        return
    results = measure_all(args.photo, args.repeats)
    print("\n".join(table(results, photo_path(args.photo).stat().st_size)))


if __name__ == "__main__":
    main()


def input_size_table(photo: str = "24mp", repeats: int = 5) -> list[str]:
    """The quality/speed trade of BOOTHGATE_PROVIDER_INPUT_PIXELS: cost and bytes per setting."""
    from boothgate.imaging.images import prepare

    path = photo_path(photo)
    upload = path.stat().st_size
    lines = [
        "| provider_input_pixels | sent to provider | bytes sent / upload | CPU ms to prepare |",
        "|---:|---|---:|---:|",
    ]
    for pixels in (1_000_000, 1_500_000, 2_000_000, 4_000_000, 8_000_000):
        out = prepare(path, pixels, SOURCE_LIMIT, QUALITY)
        cpus = []
        for _ in range(repeats):
            c0 = time.process_time()
            prepare(path, pixels, SOURCE_LIMIT, QUALITY)
            cpus.append(time.process_time() - c0)
        lines.append(
            f"| {pixels:,} | {out.width}×{out.height} JPEG, {len(out.data) / 1e3:.0f} kB "
            f"| {len(out.data) / upload:.1%} | {statistics.median(cpus) * 1000:.0f} |"
        )
    return lines
