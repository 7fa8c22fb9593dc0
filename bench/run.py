"""One scenario against one target (our server, or the echo floor), in a fresh server process."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.harness import Booths, Post, ServerProcess, TreeMemory, children, run_server, vm_hwm_mb
from bench.photos import photo_path
from bench.scenarios import Counter, Scenario, load_photo, run_pattern, unique_photo

UPLOAD_PASSWORD = "bench-upload-password"
ADMIN_PASSWORD = "bench-admin-password"
DEADLINE_SECONDS = 48.0
CLIENT_TIMEOUT_SECONDS = 70.0  # longer than the deadline: a late answer is measured, not cut off


@dataclass
class Outcome:
    """What one scenario did to one target."""

    scenario: Scenario
    target: str  # "boothgate", "echo" or "prepfloor"
    posts: list[Post]
    wall_seconds: float
    peak_rss_mb: float
    upload_bytes: int
    loop: dict[str, Any] | None = None  # the server's loop watch figures, from /health
    provider_calls: list[dict[str, Any]] = field(default_factory=list)
    provider_seconds: float = 0.0  # subtracted from each answer time to get the overhead
    cpu_seconds: float = 0.0  # the server's CPU time during the scenario (all threads, and its workers)
    peak_tree_mb: float = 0.0  # peak memory of the server and its worker processes together (PSS, sampled)
    workers: dict[str, Any] | None = None  # the server's image workers, from /health (early decodes, replaced)
    worker_hwm_mb: list[float] = field(default_factory=list)  # VmHWM of each live worker process, at the end

    @property
    def worker_hwm_max_mb(self) -> float:
        return max(self.worker_hwm_mb, default=0.0)

    @property
    def cpu_ms_per_photo(self) -> float | None:
        return self.cpu_seconds * 1000 / len(self.ok) if self.ok else None

    @property
    def ok(self) -> list[Post]:
        return [p for p in self.posts if p.status == 200]

    @property
    def errors(self) -> int:
        return len(self.posts) - len(self.ok)

    @property
    def late(self) -> int:
        return sum(1 for p in self.posts if p.seconds > DEADLINE_SECONDS)

    def overheads_ms(self) -> list[float]:
        return sorted((p.seconds - self.provider_seconds) * 1000 for p in self.ok)

    def percentile_ms(self, q: float) -> float | None:
        return _percentile(self.overheads_ms(), q)

    def worst_ms(self) -> float | None:
        values = self.overheads_ms()
        return values[-1] if values else None

    def after_last_byte_ms(self, q: float) -> float | None:
        """Percentile of the time from the last byte sent to the whole answer, minus the provider's latency."""
        return _percentile(sorted((p.after_last_byte - self.provider_seconds) * 1000 for p in self.ok), q)

    @property
    def throughput(self) -> float:
        """Answered photos per second, from the first request to the last answer."""
        if not self.ok:
            return 0.0
        span = max(p.started + p.seconds for p in self.posts) - min(p.started for p in self.posts)
        return len(self.ok) / span if span > 0 else 0.0

    def provider_bytes_per_photo(self) -> float | None:
        if not self.provider_calls:
            return None
        return statistics.mean(c["photo_bytes"] for c in self.provider_calls)

    def first_errors(self, n: int = 3) -> list[str]:
        return [f"{p.status} {p.error}"[:160] for p in self.posts if p.status != 200][:n]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1 or q >= 100:
        return values[-1] if q >= 100 else values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def boothgate_env(workdir: Path, scenario: Scenario, provider_log: Path) -> dict[str, str]:
    return {
        "BOOTHGATE_DATA_DIR": str(workdir / "data"),
        "BOOTHGATE_UPLOAD_PASSWORD": UPLOAD_PASSWORD,
        "BOOTHGATE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "BOOTHGATE_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
        "BOOTHGATE_LOOP_WATCH": "1",
        "BOOTHGATE_BENCH_PROVIDER_SECONDS": str(scenario.provider_seconds),
        "BOOTHGATE_BENCH_PROVIDER_LOG": str(provider_log),
        # One address posts for every booth here: the per-address failure lockout must not trip.
        "BOOTHGATE_AUTH_MAX_FAILURES": "1000000",
        **{f"BOOTHGATE_{name.upper()}": value for name, value in scenario.settings},
    }


async def _warm_up(booths: Booths, counter: Counter) -> None:
    """One small post first, so one-time costs (imports, first database write) are not measured."""
    n = counter.next()
    post = await booths.post(0, booths.body(unique_photo(load_photo("2mp"), n), 0, n))
    booths.posts.clear()
    if post.status != 200:
        raise RuntimeError(f"warm-up post failed: {post.status} {post.error}")


def enable_slot(server: ServerProcess) -> None:
    """Switch slot gemini/1 on as a restyling slot, through the JSON API like an operator would."""
    response = httpx.put(
        f"{server.base_url}/api/slots/gemini/1",
        # The floors do only the necessary work, so the slot answers the provider's image as returned and
        # without the content check; both steps are measured on their own (`python -m bench.moderation`).
        json={
            "enabled": True,
            "kind": "prompt",
            "prompt": "as a watercolour painting",
            "output_format": "jpeg",
            "result_shape": "as_returned",
            "moderation": {"before": False, "after": False},
        },
        auth=("admin", ADMIN_PASSWORD),
        timeout=30,
    )
    response.raise_for_status()


def server_health(server: ServerProcess) -> dict[str, Any]:
    try:
        data = httpx.get(f"{server.base_url}/health", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_target(target: str, scenario: Scenario, workdir: Path) -> Outcome:
    """Start a fresh server for `target`, run `scenario` against it, stop it, return the figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    provider_log = workdir / "provider.jsonl"
    if target == "echo":
        module, env = "bench.echo", {}
    elif target == "prepfloor":
        module, env = "bench.prepfloor", {"BOOTHGATE_BENCH_PROVIDER_SECONDS": str(scenario.provider_seconds)}
    else:
        module, env = "bench.server", boothgate_env(workdir, scenario, provider_log)
    with run_server(module, [], env, workdir) as server:
        booths = Booths(server.base_url, "/booth/gemini/1", UPLOAD_PASSWORD, CLIENT_TIMEOUT_SECONDS)
        counter = Counter()
        if target == "boothgate":
            enable_slot(server)
        asyncio.run(_warm_up(booths, counter))
        provider_log.unlink(missing_ok=True)  # the warm-up's call is not one of the scenario's
        booths.bytes_per_second = scenario.bytes_per_second
        t0, cpu0 = time.monotonic(), server.cpu_seconds()
        with TreeMemory(server.pid) as memory:
            posts = asyncio.run(run_pattern(booths, scenario, counter))
        wall, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
        health = server_health(server)
        # The kernel's high-water marks, read once at the end: no sampling interval can miss a peak.
        peak = server.peak_rss_mb()
        worker_hwm = [vm_hwm_mb(child) for child in children(server.pid)]
    calls = []
    if provider_log.exists():
        calls = [json.loads(line) for line in provider_log.read_text().splitlines() if line.strip()]
    return Outcome(
        scenario,
        target,
        list(posts),
        wall,
        peak,
        photo_path(scenario.photo).stat().st_size,
        loop=health.get("loop_watch"),
        provider_calls=calls,
        provider_seconds=scenario.provider_seconds if target != "echo" else 0.0,
        cpu_seconds=cpu,
        peak_tree_mb=memory.peak_mb,
        workers=health.get("image_workers"),
        worker_hwm_mb=worker_hwm,
    )
