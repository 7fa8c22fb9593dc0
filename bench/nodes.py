"""Two nodes against one (issue 27): the same booth load against one `boothgate serve` on PostgreSQL, and
against two on the same PostgreSQL with the booths spread round-robin over them (booth b posts to node
b mod 2, as each booth is set up with one node's address).

The booths post to the nodes directly, not through Caddy: a proxy relaying every 24 MP upload would spend
the same 2 cores in the two-node run only, and its cost would read as the cost of a second node (the Caddy
path is covered for correctness by tests/nodes/test_caddy_cluster.py). Each configuration gets a fresh
database on one throw-away PostgreSQL server (tests/postgres_server.py), so both start from empty tables.
Media stay in each node's data folder (no bucket): the figure is the cost of sharing PostgreSQL.

The nodes share the machine's cores, so the image workers are split between them (one node: all cores;
two nodes: half each), and the total number of decodes at once is the same in both runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.postgres_server import NoPostgres, PostgresServer, running_postgres

from bench.harness import Booths, run_servers, tree_cpu_seconds
from bench.photos import photo_path
from bench.run import (
    CLIENT_TIMEOUT_SECONDS,
    UPLOAD_PASSWORD,
    Outcome,
    boothgate_env,
    enable_slot,
    server_health,
)
from bench.scenarios import Counter, Scenario, load_photo, run_pattern, unique_photo


@dataclass
class NodesRun:
    """One configuration (how many nodes) under the scenario's load."""

    nodes: int
    outcome: Outcome
    calls_per_node: list[int]  # provider calls each node made (its own log): the spread that really happened
    postgres_cpu_seconds: float  # the PostgreSQL server and its backends, during the load

    @property
    def postgres_ms_per_photo(self) -> float | None:
        ok = len(self.outcome.ok)
        return self.postgres_cpu_seconds * 1000 / ok if ok else None


@dataclass
class NodesResult:
    scenario: Scenario
    runs: list[NodesRun] = field(default_factory=list)  # one node, then `scenario.nodes`, repeated in turn
    skipped: str = ""  # why nothing was measured (no PostgreSQL)
    seconds: float = 0.0  # the whole scenario: PostgreSQL, every node's start and stop, the loads

    def pairs(self) -> list[tuple[NodesRun, NodesRun]]:
        """(one node, several nodes) of each repetition."""
        ones = [r for r in self.runs if r.nodes == 1]
        many = [r for r in self.runs if r.nodes > 1]
        return list(zip(ones, many, strict=False))


def _cpu(pid: int | None) -> float:
    return tree_cpu_seconds(pid) if pid else 0.0


async def _warm_up(booths: Booths, nodes: int, counter: Counter) -> None:
    """One small post to each node first, so one-time costs (imports, first database write) are not measured."""
    photo = load_photo("2mp")
    for booth in range(nodes):  # booth b goes to node b mod nodes
        n = counter.next()
        post = await booths.post(booth, booths.body(unique_photo(photo, n), booth, n))
        if post.status != 200:
            raise RuntimeError(f"warm-up post to node {booth} failed: {post.status} {post.error}")
    booths.posts.clear()


def _calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def run_nodes(scenario: Scenario, pg: PostgresServer, nodes: int, workdir: Path) -> NodesRun:
    """Start `nodes` fresh servers on a fresh database of `pg`, run the scenario's load spread over them."""
    workdir.mkdir(parents=True, exist_ok=True)
    database = pg.fresh_database()
    logs = [workdir / f"provider-{i}.jsonl" for i in range(nodes)]
    workers = str(max(1, (os.cpu_count() or 2) // nodes))
    envs = [
        boothgate_env(workdir / f"node{i}", scenario, log)
        | {"BOOTHGATE_DATABASE_URL": database, "BOOTHGATE_IMAGE_WORKERS": workers}
        for i, log in enumerate(logs)
    ]
    # All at once on the fresh database: the migration takes turns under its advisory lock.
    with run_servers("bench.server", [], envs, workdir) as servers:
        enable_slot(servers[0])  # one database: the slot is the same on every node
        spread = tuple(s.base_url for s in servers)
        booths = Booths(spread[0], "/booth/gemini/1", UPLOAD_PASSWORD, CLIENT_TIMEOUT_SECONDS, spread=spread)
        counter = Counter()
        asyncio.run(_warm_up(booths, nodes, counter))
        for log in logs:
            log.unlink(missing_ok=True)  # the warm-up's calls are not the scenario's
        booths.bytes_per_second = scenario.bytes_per_second
        cpu0, pg0 = sum(s.cpu_seconds() for s in servers), _cpu(pg.postmaster_pid())
        t0 = time.monotonic()
        posts = asyncio.run(run_pattern(booths, scenario, counter))
        wall = time.monotonic() - t0
        cpu, pg_cpu = sum(s.cpu_seconds() for s in servers) - cpu0, _cpu(pg.postmaster_pid()) - pg0
        health = [server_health(s) for s in servers]
        peak = max(s.peak_rss_mb() for s in servers)
    calls = [_calls(log) for log in logs]
    stalls = [h["loop_watch"] for h in health if h.get("loop_watch")]
    outcome = Outcome(
        scenario,
        f"{nodes} node" + ("s" if nodes > 1 else ""),
        list(posts),
        wall,
        peak,
        photo_path(scenario.photo).stat().st_size,
        loop=max(stalls, key=lambda w: w.get("max_stall_ms", 0), default=None),
        provider_calls=[c for node in calls for c in node],
        provider_seconds=scenario.provider_seconds,
        cpu_seconds=cpu,
    )
    return NodesRun(nodes, outcome, [len(c) for c in calls], pg_cpu)


def measure(scenario: Scenario, workdir: Path, report: Any = None) -> NodesResult:
    """One node, then `scenario.nodes` nodes, `scenario.repeats` times in turn, on one PostgreSQL server.
    `report(run)` is called after each run (to print it)."""
    result, t0 = NodesResult(scenario), time.monotonic()
    try:
        with running_postgres() as pg:
            for i in range(scenario.repeats):
                for nodes in (1, scenario.nodes):
                    run = run_nodes(scenario, pg, nodes, workdir / f"{scenario.key}-{nodes}-{i}")
                    result.runs.append(run)
                    if report is not None:
                        report(run)
    except NoPostgres as missing:
        result.skipped = str(missing)
    result.seconds = time.monotonic() - t0
    return result
