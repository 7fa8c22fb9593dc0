"""The load patterns: who posts what, when, and what each post got.

- sequential: one booth, one post after another (the cost of a single photo with nothing else going on);
- periodic: N booths, each posting every `period_seconds` (an event in full swing), phases spread evenly —
  or, with `staggered=False`, all starting at the same instant (the doors open, every booth fires);
- burst: N posts at the same instant (every booth of a big event pressing the button together);
- closed: N booths posting back to back for `duration_seconds` (the most the server sustains).
"""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from dataclasses import dataclass, replace

from bench.harness import Booths, Photo, Post
from bench.photos import SPECS, photo_bytes


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    photo: str  # a bench.photos spec name
    pattern: str  # sequential | periodic | burst | closed
    booths: int
    provider_seconds: float
    posts_per_booth: int = 1  # sequential and periodic
    period_seconds: float = 0.0  # periodic
    duration_seconds: float = 0.0  # closed
    settings: tuple[tuple[str, str], ...] = ()  # extra BOOTHGATE_ settings for our server
    bytes_per_second: float | None = None  # booths upload at this pace (a real network), else at full speed
    floor: bool = False  # also run the same-run preparation floor (bench/prepfloor.py)
    staggered: bool = True  # periodic: phases spread over one period; False: every booth starts at once
    repeats: int = 1  # floor scenarios: consecutive runs, the floor and our server interleaved
    nodes: int = 0  # > 1: the same load against one node and against this many on one PostgreSQL (bench/nodes.py)

    def scaled(self, **changes: object) -> Scenario:
        return replace(self, **changes)  # type: ignore[arg-type]


def full_scenarios() -> list[Scenario]:
    """What `make bench` runs: the issue's scenarios, shortened where noted so the run fits 10 minutes."""
    return [
        Scenario("one-24mp", "1 booth, 24 MP JPEG", "24mp", "sequential", 1, 0.5, posts_per_booth=12),
        Scenario(
            "one-24mp-1.5mp", "1 booth, 24 MP JPEG, provider_input_pixels=1500000", "24mp", "sequential", 1, 0.5,
            posts_per_booth=12, settings=(("provider_input_pixels", "1500000"),),
        ),
        Scenario("one-12mp", "1 booth, 12 MP JPEG", "12mp", "sequential", 1, 0.5, posts_per_booth=8),
        Scenario("one-2mp", "1 booth, 2 MP JPEG", "2mp", "sequential", 1, 0.5, posts_per_booth=8),
        Scenario("one-png", "1 booth, PNG with transparency", "png", "sequential", 1, 0.5, posts_per_booth=8),
        # 3 cycles of 30 s instead of an evening: the load is periodic, so more cycles add samples,
        # not new behaviour. 150 posts give a usable p99.
        Scenario(
            "fifty", "50 booths, 24 MP every 30 s, 10 s provider", "24mp", "periodic", 50, 10.0,
            posts_per_booth=3, period_seconds=30.0,
        ),
        Scenario("burst", "200 simultaneous 24 MP posts, 10 s provider", "24mp", "burst", 200, 10.0),
        Scenario(
            "max", "max sustained throughput, 24 MP, 24 booths back to back, 1 s provider", "24mp", "closed",
            24, 1.0, duration_seconds=40.0,
        ),
        *floor_scenarios(),
        *nodes_scenarios(),
    ]  # fmt: skip


def floor_scenarios() -> list[Scenario]:
    """Speed to the floor: each against our server and the same-run preparation floor."""
    return [
        Scenario("loop16", "16 simultaneous 24 MP posts over loopback, 2 s provider", "24mp", "burst", 16, 2.0,
                 floor=True, repeats=5),
        Scenario("loop16-noisy", "16 simultaneous noisy 24 MP posts over loopback, 2 s provider", "noisy",
                 "burst", 16, 2.0, floor=True, repeats=5),
        Scenario("paced", "8 booths, each uploading a 24 MP photo at 4 MB/s every 8 s, 2 s provider", "24mp",
                 "periodic", 8, 2.0, posts_per_booth=2, period_seconds=8.0, bytes_per_second=4_000_000,
                 floor=True),
        Scenario("together", "8 booths starting together, each uploading a 24 MP photo at 4 MB/s, 2 s provider",
                 "24mp", "periodic", 8, 2.0, posts_per_booth=2, period_seconds=8.0, bytes_per_second=4_000_000,
                 floor=True, staggered=False),
        Scenario("together-noisy", "8 booths starting together, each uploading a noisy 24 MP photo at 4 MB/s, "
                 "2 s provider", "noisy", "periodic", 8, 2.0, posts_per_booth=2, period_seconds=8.0,
                 bytes_per_second=4_000_000, floor=True, staggered=False),
        Scenario("burst64", "64 simultaneous 24 MP posts, 10 s provider", "24mp", "burst", 64, 10.0, floor=True),
        Scenario("burst128", "128 simultaneous 24 MP posts, 10 s provider", "24mp", "burst", 128, 10.0, floor=True),
        Scenario("burst128-noisy", "128 simultaneous noisy 24 MP posts, 10 s provider", "noisy", "burst", 128,
                 10.0, floor=True),
    ]  # fmt: skip


def nodes_scenarios() -> list[Scenario]:
    """One node against two on the same PostgreSQL (issue 27), booths spread round-robin over the nodes."""
    return [
        Scenario("nodes2", "32 booths, 24 MP every 12 s, 2 s provider: 1 node vs 2 nodes on one PostgreSQL",
                 "24mp", "periodic", 32, 2.0, posts_per_booth=2, period_seconds=12.0, nodes=2),
    ]  # fmt: skip


def quick_scenarios() -> list[Scenario]:
    """A smoke run of about a minute: the same patterns, small."""
    full = {s.key: s for s in full_scenarios()}
    return [
        full["one-24mp"].scaled(posts_per_booth=3),
        full["one-png"].scaled(posts_per_booth=2),
        full["fifty"].scaled(
            title="10 booths, 24 MP every 10 s, 2 s provider",
            booths=10,
            provider_seconds=2.0,
            posts_per_booth=1,
            period_seconds=10.0,
        ),
        full["burst"].scaled(title="20 simultaneous 24 MP posts, 3 s provider", booths=20, provider_seconds=3.0),
        full["max"].scaled(
            title="max sustained throughput, 24 MP, 8 booths, 1 s provider", booths=8, duration_seconds=10.0
        ),
    ]


def unique_photo(photo: Photo, number: int) -> Photo:
    """The same image with a different byte or two, so the server's duplicate detection never answers
    from its cache: a JPEG comment segment after SOI, or a PNG text chunk after IHDR. Decoding cost
    is unchanged."""
    tag = f"bench photo {number}".encode()
    if photo.data.startswith(b"\xff\xd8"):
        segment = b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag
        data = photo.data[:2] + segment + photo.data[2:]
    else:
        chunk_type = b"tEXt"
        body = b"Comment\x00" + tag
        chunk = struct.pack(">I", len(body)) + chunk_type + body
        chunk += struct.pack(">I", zlib.crc32(chunk_type + body) & 0xFFFFFFFF)
        ihdr_end = 8 + 25  # signature, then IHDR: length, type, 13 bytes, CRC
        data = photo.data[:ihdr_end] + chunk + photo.data[ihdr_end:]
    return replace(photo, data=data)


def load_photo(name: str) -> Photo:
    spec = SPECS[name]
    if spec.fmt == "png":
        return Photo(name, photo_bytes(name), "IMG_0001.png", "image/png")
    return Photo(name, photo_bytes(name), "IMG_0001.JPG", "image/jpeg")


class Counter:
    """Numbers posts across booths so every photo is unique within a server's life."""

    def __init__(self, start: int = 0) -> None:
        self.value = start

    def next(self) -> int:
        self.value += 1
        return self.value


async def _booth_loop(booths: Booths, booth: int, photo: Photo, counter: Counter, s: Scenario) -> None:
    begin = time.monotonic()
    if s.pattern == "periodic" and s.staggered:
        await asyncio.sleep(booth * s.period_seconds / s.booths)  # phases spread over one period
        begin = time.monotonic()
    k = 0
    while True:
        if s.pattern == "closed":
            if time.monotonic() - begin >= s.duration_seconds:
                return
        elif k >= s.posts_per_booth:
            return
        n = counter.next()
        await booths.post(booth, booths.body(unique_photo(photo, n), booth, n))
        k += 1
        if s.pattern == "periodic" and k < s.posts_per_booth:
            await asyncio.sleep(max(0.0, begin + k * s.period_seconds - time.monotonic()))


async def run_pattern(booths: Booths, s: Scenario, counter: Counter) -> list[Post]:
    """Run one scenario's posts; returns them (also kept in `booths.posts`)."""
    photo = load_photo(s.photo)
    if s.pattern == "burst":
        # Every body is built first, so all requests leave at the same instant.
        numbers = [counter.next() for _ in range(s.booths)]
        bodies = [booths.body(unique_photo(photo, n), b, n) for b, n in enumerate(numbers)]
        booths.started = time.monotonic()
        await asyncio.gather(*(booths.post(b, body) for b, body in enumerate(bodies)))
    else:
        booths.started = time.monotonic()
        await asyncio.gather(*(_booth_loop(booths, b, photo, counter, s) for b in range(s.booths)))
    return booths.posts
