"""The optional result steps' cost per photo: the offline NSFW check (`boothgate.imaging.nsfw`) and the result
shape (`boothgate.imaging.shape`: fitting the provider's image to the photo's print layout).

    python -m bench.moderation

What the server checks is already small: the before-check looks at the prepared photo (a 24 MP upload
downscaled to ~2 MP), the after-check at the provider's result (here 1024×1024, as the bench provider
answers). The model loads once per server process; its load time is printed apart.
"""

from __future__ import annotations

import io
import statistics
import time

from bench import photos
from boothgate.imaging import images, nsfw
from boothgate.imaging import shape as shaping

REPEATS = 10


def _result_jpeg() -> bytes:
    im = photos.render(photos.SPECS["2mp"]).resize((1024, 1024))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _ms(data: bytes, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        nsfw.score(data)
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times), max(times)


def measure(repeats: int = REPEATS) -> list[str]:
    problem = nsfw.problem()
    if problem:
        return [f"(not measured: {problem})"]
    started = time.monotonic()
    nsfw.warm()
    load_ms = (time.monotonic() - started) * 1000
    prepared = images.prepare(photos.photo_path("24mp"), 2_000_000, 200_000_000).data
    rows = [
        ("before-check: a 24 MP photo as prepared (~2 MP JPEG)", prepared),
        ("after-check: a 1024×1024 result", _result_jpeg()),
    ]
    lines = [
        f"Model load, once per server process: {load_ms:.0f} ms.",
        "",
        "| check | CPU ms per photo (median) | worst of " + str(repeats) + " |",
        "|---|---:|---:|",
    ]
    for label, data in rows:
        median, worst = _ms(data, repeats)
        lines.append(f"| {label} | {median:.0f} | {worst:.0f} |")
    return lines


def shape_table(repeats: int = REPEATS) -> list[str]:
    """A 1024×1024 provider result fitted to a 6000×4000 (3:2) photo, as the booth gets it."""
    result = _result_jpeg()
    plans = [
        (
            "match_photo (default): crop to 3:2, enlarge to 3000×2000",
            shaping.ShapePlan("match_photo", "jpeg", 90, (6000, 4000)),
        ),
        ("fixed 1800×1200 (6×4 in at 300 dpi)", shaping.ShapePlan("fixed", "jpeg", 90, (6000, 4000), (1800, 1200))),
        ("as_returned (JPEG passes through)", shaping.ShapePlan("as_returned", "jpeg", 90, (6000, 4000))),
    ]
    lines = ["| result shape | CPU ms per photo (median) | worst of " + str(repeats) + " |", "|---|---:|---:|"]
    for label, plan in plans:
        times = []
        for _ in range(repeats):
            started = time.process_time()
            shaping.shape_result(result, plan)
            times.append((time.process_time() - started) * 1000)
        lines.append(f"| {label} | {statistics.median(times):.0f} | {max(times):.0f} |")
    return lines


def main() -> None:
    print("\n".join(measure()))
    print()
    print("\n".join(shape_table()))


if __name__ == "__main__":
    main()
