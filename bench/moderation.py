"""The content check's cost: milliseconds per photo for the offline NSFW check (`boothgate.nsfw`).

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
from boothgate import images, nsfw

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


def main() -> None:
    print("\n".join(measure()))


if __name__ == "__main__":
    main()
