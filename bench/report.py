"""The benchmark's tables, targets and the `docs/benchmarks.md` page."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.nodes import NodesResult, NodesRun
from bench.prepare import Measurement
from bench.run import DEADLINE_SECONDS, Outcome


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB memory, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"load average at start {load}"
    )


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.1f}×"


@dataclass
class Pair:
    """A scenario's figures on our server and on the echo floor."""

    ours: Outcome
    echo: Outcome | None
    floor: Outcome | None = None  # the same-run preparation floor (bench/prepfloor.py)
    runs: list[tuple[Outcome, Outcome | None]] = field(default_factory=list)  # (ours, floor) of each run


def _triple(o: Outcome | None) -> str:
    return " / ".join(_ms(o.percentile_ms(q)) for q in (50, 95, 99)) if o else "—"


def _row(pair: Pair, naive_ms: float) -> list[str]:
    o, e = pair.ours, pair.echo
    sent = o.provider_bytes_per_photo()
    return [
        o.scenario.title,
        str(len(o.posts)),
        f"{o.errors} / {o.late}",
        _triple(o),
        _triple(e),
        _ratio(o.percentile_ms(50), e.percentile_ms(50) if e else None),
        _ratio(o.percentile_ms(50), naive_ms),
        f"{o.throughput:.1f}" + (f" ({e.throughput:.1f})" if e else ""),
        f"{o.peak_rss_mb:.0f}" + (f" ({e.peak_rss_mb:.0f})" if e else ""),
        _ms(o.cpu_ms_per_photo) + (f" ({_ms(e.cpu_ms_per_photo)})" if e else ""),
        f"{sent / 1e3:.0f} kB ({sent / o.upload_bytes:.1%})" if sent else "—",
        f"{o.loop['max_stall_ms']:.0f} ms" if o.loop else "—",
    ]


SCENARIO_HEADER = [
    "scenario",
    "posts",
    "errors / late",
    "overhead p50 / p95 / p99 ms",
    "echo p50 / p95 / p99 ms",
    "p50 vs echo",
    "p50 vs naive prep",
    "throughput /s (echo)",
    "peak RSS MB (echo)",
    "server CPU ms/photo (echo)",
    "to provider per photo",
    "max loop stall",
]


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def scenario_table(pairs: list[Pair], naive_ms: float) -> list[str]:
    return markdown_table(SCENARIO_HEADER, [_row(p, naive_ms) for p in pairs])


@dataclass
class Target:
    text: str
    measured: str
    met: bool | None  # None: not measured in this run


def _check(text: str, value: float | None, limit: float, fmt: Callable[[float], str]) -> Target:
    if value is None:
        return Target(text, "not measured", None)
    return Target(text, fmt(value), value <= limit)


def targets(pairs: list[Pair], prep: dict[str, Measurement]) -> list[Target]:
    """The issue's targets, each with what this run measured."""
    by_key = {p.ours.scenario.key: p for p in pairs}
    out: list[Target] = []
    draft, naive = prep.get("pillow-draft"), prep.get("naive")
    # CPU time: on a shared machine the wall time of one preparation says more about the neighbours.
    prep_ms = draft.cpu_ms if draft and not draft.error else 0.0
    if draft and naive and not draft.error and not naive.error:
        measured = f" ({draft.cpu_ms:.0f} ms vs {naive.cpu_ms:.0f} ms)"
        text = "Preparing a 24 MP JPEG costs ≤ 40 % of the naive path (CPU)"
        out.append(_check(text, draft.cpu_ms / naive.cpu_ms, 0.40, lambda v: f"{v:.0%}{measured}"))
    fifty = by_key.get("fifty")
    if fifty:
        o, e = fifty.ours, fifty.echo
        out.append(_check("50 booths: overhead p50 ≤ 250 ms", o.percentile_ms(50), 250, lambda v: f"{v:.0f} ms"))
        out.append(_check("50 booths: overhead p99 ≤ 600 ms", o.percentile_ms(99), 600, lambda v: f"{v:.0f} ms"))
        for q in (50, 99):
            floor = e.percentile_ms(q) if e else None
            ours = o.percentile_ms(q)
            if floor is not None and ours is not None:
                limit = 1.5 * floor + prep_ms
                text = f"50 booths: p{q} ≤ 1.5 × echo p{q} + one preparation"
                measured = f"{ours:.0f} ms vs limit {limit:.0f} ms (echo {floor:.0f}, prep {prep_ms:.0f})"
                out.append(Target(text, measured, ours <= limit))
    burst = by_key.get("burst")
    if burst:
        o = burst.ours
        out.append(Target("Burst: zero errors", f"{o.errors} of {len(o.posts)}", o.errors == 0))
        slowest = max((p.seconds for p in o.posts), default=0.0)
        text = f"Burst: every answer within {DEADLINE_SECONDS:.0f} s"
        out.append(Target(text, f"{o.late} late, slowest {slowest:.1f} s", o.late == 0))
        out.append(_check("Burst: peak RSS ≤ 600 MB", o.peak_rss_mb, 600, lambda v: f"{v:.0f} MB"))
    stalls = [p.ours.loop["max_stall_ms"] for p in pairs if p.ours.loop]
    worst = max(stalls) if stalls else None
    out.append(_check("No event-loop stall above 50 ms (any scenario)", worst, 50, lambda v: f"worst {v:.0f} ms"))
    ratios = [
        p.ours.provider_bytes_per_photo() / p.ours.upload_bytes  # type: ignore[operator]
        for p in pairs
        if p.ours.scenario.photo == "24mp" and p.ours.provider_bytes_per_photo()
    ]
    text = "Bytes sent to the provider for a 24 MP photo ≤ 5 % of the upload"
    out.append(_check(text, max(ratios) if ratios else None, 0.05, lambda v: f"{v:.1%}"))
    return out


FLOOR_HEADER = [
    "scenario",
    "posts",
    "errors / late (floor)",
    "overhead p50 / worst ms",
    "prep floor p50 / worst ms",
    "p50 / worst vs floor",
    "echo p50 ms",
    "last byte → answer − provider, p50 / worst ms (floor)",
    "peak memory, server + workers MB (floor)",
    "VmHWM server / largest worker MB (floor)",
    "CPU ms/photo (floor)",
]


def _pair_ms(a: float | None, b: float | None) -> str:
    return f"{_ms(a)} / {_ms(b)}"


def _floor_row(pair: Pair) -> list[str]:
    o, f, e = pair.ours, pair.floor, pair.echo
    ratio = "—"
    if f is not None:
        r50, rw = _ratio(o.percentile_ms(50), f.percentile_ms(50)), _ratio(o.worst_ms(), f.worst_ms())
        ratio = f"{r50} / {rw}"
    paced = o.scenario.bytes_per_second is not None
    last = _pair_ms(o.after_last_byte_ms(50), o.after_last_byte_ms(100)) if paced else "—"
    if paced and f is not None:
        last += f" ({_ms(f.after_last_byte_ms(50))})"
    return [
        o.scenario.title,
        str(len(o.posts)),
        f"{o.errors} / {o.late}" + (f" ({f.errors} / {f.late})" if f else ""),
        _pair_ms(o.percentile_ms(50), o.worst_ms()),
        _pair_ms(f.percentile_ms(50), f.worst_ms()) if f else "—",
        ratio,
        _ms(e.percentile_ms(50)) if e else "—",
        last,
        f"{o.peak_tree_mb:.0f}" + (f" ({f.peak_tree_mb:.0f})" if f else ""),
        f"{o.peak_rss_mb:.0f} / {o.worker_hwm_max_mb:.0f}" + (f" ({f.peak_rss_mb:.0f})" if f else ""),
        _ms(o.cpu_ms_per_photo) + (f" ({_ms(f.cpu_ms_per_photo)})" if f else ""),
    ]


def floor_table(pairs: list[Pair]) -> list[str]:
    rows = [_floor_row(p) for p in pairs if p.floor is not None]
    return markdown_table(FLOOR_HEADER, rows) if rows else []


def repeat_table(pairs: list[Pair]) -> list[str]:
    """Every run of the repeated scenarios, with its ratios to the floor of the same run."""
    rows = []
    for p in pairs:
        if len(p.runs) < 2:
            continue
        for i, (o, f) in enumerate(p.runs, 1):
            r50 = _ratio_value(o.percentile_ms(50), f.percentile_ms(50) if f else None)
            rw = _ratio_value(o.worst_ms(), f.worst_ms() if f else None)
            rows.append([
                o.scenario.title, str(i), f"{o.errors} / {o.late}",
                _pair_ms(o.percentile_ms(50), o.worst_ms()),
                _pair_ms(f.percentile_ms(50), f.worst_ms()) if f else "—",
                "—" if r50 is None or rw is None else f"{r50:.2f}× / {rw:.2f}×",
            ])  # fmt: skip
    if not rows:
        return []
    header = ["scenario", "run", "errors / late", "overhead p50 / worst ms", "prep floor p50 / worst ms",
              "p50 / worst vs floor"]  # fmt: skip
    return ["", "Each run of the repeated scenarios:", "", *markdown_table(header, rows)]


def _ratio_value(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def floor_targets(pairs: list[Pair]) -> list[Target]:
    """Issue 15's targets: ratios to the same-run floor, time after the last byte, memory, lateness."""
    by_key = {p.ours.scenario.key: p for p in pairs}
    out: list[Target] = []
    for key, photo in (("loop16", "24 MP"), ("loop16-noisy", "noisy 24 MP")):
        pair = by_key.get(key)
        if pair is None or pair.floor is None:
            continue
        runs = pair.runs or [(pair.ours, pair.floor)]
        for name, of in (("p50", lambda o: o.percentile_ms(50)), ("worst", lambda o: o.worst_ms())):
            ratios = [_ratio_value(of(o), of(f)) if f else None for o, f in runs]
            text = f"16 booths, {photo}, over loopback: overhead {name} ≤ 1.15× the same-run prep floor's"
            if len(runs) > 1:
                text += f", in each of {len(runs)} runs"
            if any(r is None for r in ratios):
                out.append(Target(text, "not measured", None))
                continue
            measured = ", ".join(f"{r:.2f}×" for r in ratios)  # type: ignore[str-format]
            out.append(Target(text, measured, all(r <= 1.15 for r in ratios)))  # type: ignore[operator]
    paced = by_key.get("paced")
    if paced:
        text = "4 MB/s uploads, staggered: p50 last byte → answer, minus provider latency ≤ 0.2 s"
        out.append(_check(text, paced.ours.after_last_byte_ms(50), 200, lambda v: f"{v:.0f} ms"))
    for key, photo in (("together", "24 MP"), ("together-noisy", "noisy 24 MP")):
        pair = by_key.get(key)
        if pair:
            text = f"8 booths starting together at 4 MB/s, {photo}: every booth's last byte → answer − provider ≤ 0.2 s"
            out.append(_check(text, pair.ours.after_last_byte_ms(100), 200, lambda v: f"worst {v:.0f} ms"))
    for key, photo in (("burst128", "24 MP"), ("burst128-noisy", "noisy 24 MP")):
        pair = by_key.get(key)
        if pair:
            o = pair.ours
            text = f"128 in flight, {photo}: server VmHWM ≤ 400 MB"
            extra = f" (largest worker {o.worker_hwm_max_mb:.0f} MB, sampled PSS of all {o.peak_tree_mb:.0f} MB)"
            out.append(_check(text, o.peak_rss_mb, 400, lambda v, m=extra: f"{v:.0f} MB{m}"))
    burst = by_key.get("burst")
    if burst:
        o = burst.ours
        slowest = max((p.seconds for p in o.posts), default=0.0)
        busy = sum(1 for p in o.posts if p.status == 503)
        text = f"200 at once: 0 answers after the {DEADLINE_SECONDS:.0f} s deadline"
        out.append(Target(text, f"{o.late} late, slowest {slowest:.1f} s, {busy} busy", o.late == 0))
    return out


def targets_table(items: list[Target]) -> list[str]:
    mark = {True: "met", False: "**missed**", None: "—"}
    return markdown_table(["target", "measured", ""], [[t.text, t.measured, mark[t.met]] for t in items])


def page(
    command: str,
    machine_text: str,
    started: dt.datetime,
    elapsed_seconds: float,
    prep_lines: list[str],
    scenario_lines: list[str],
    target_lines: list[str],
    notes: list[str],
    floor_lines: list[str] | None = None,
    nodes_lines: list[str] | None = None,
) -> str:
    """The whole `docs/benchmarks.md`."""
    head = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); the figures below are from the run described here.",
        "",
        f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC, took {elapsed_seconds / 60:.1f} min",
        f"- Machine: {machine_text}",
        "",
        "## Targets",
        "",
        *target_lines,
        "",
        "## Server overhead under load",
        "",
        "Overhead = the booth's answer time (measured at the booth: from sending the request to having the "
        "whole answer) minus the fake provider's fixed latency. *Echo* is the floor: a minimal endpoint that "
        "receives the same upload and answers the same bytes. *Naive prep* is the cost of the obvious "
        "preparation (full decode + LANCZOS) of one 24 MP photo.",
        "",
        *scenario_lines,
        "",
        *(_floor_section(floor_lines) if floor_lines else []),
        *(nodes_section(nodes_lines) if nodes_lines else []),
        "## Preparing a 24 MP JPEG for the provider",
        "",
        "Median of repeated runs, each candidate in its own process; CPU counts all threads.",
        "",
        *prep_lines,
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in notes],
        "",
    ]
    return "\n".join(head)


def _floor_section(lines: list[str]) -> list[str]:
    return [
        "## Against the same-run preparation floor",
        "",
        "The *prep floor* (`bench/prepfloor.py`) receives the same upload, DCT-scale-decodes it to the "
        "provider's size, encodes it, waits the same provider latency and answers the same bytes — the "
        "necessary work and nothing else, decoded in threads. Memory is the peak of the server and its "
        "worker processes together (sum of PSS, sampled every 50 ms). *Last byte → answer* is measured at "
        "the booth, for booths that pace their upload like a real network.",
        "",
        *lines,
        "",
    ]


NODES_HEADER = [
    "nodes",
    "posts (per node)",
    "errors / late",
    "overhead p50 / worst ms",
    "nodes' CPU ms/photo",
    "PostgreSQL CPU ms/photo",
    "max loop stall",
]


def _nodes_row(run: NodesRun) -> list[str]:
    o = run.outcome
    spread = " + ".join(str(c) for c in run.calls_per_node)
    return [
        str(run.nodes),
        f"{len(o.posts)} ({spread})",
        f"{o.errors} / {o.late}",
        _pair_ms(o.percentile_ms(50), o.worst_ms()),
        _ms(o.cpu_ms_per_photo),
        _ms(run.postgres_ms_per_photo),
        f"{o.loop['max_stall_ms']:.0f} ms" if o.loop else "—",
    ]


def nodes_ratios(one: NodesRun, many: NodesRun) -> tuple[float | None, float | None]:
    """Several nodes' overhead p50 and worst over one node's, under the same load."""
    a, b = one.outcome, many.outcome
    return _ratio_value(b.percentile_ms(50), a.percentile_ms(50)), _ratio_value(b.worst_ms(), a.worst_ms())


def nodes_table(result: NodesResult) -> list[str]:
    """Each run of the nodes scenario, and after each pair the ratio of several nodes to one."""
    if result.skipped:
        return [f"Not measured: {result.skipped}."]
    rows: list[list[str]] = []
    for one, many in result.pairs():
        r50, rw = nodes_ratios(one, many)
        ratio = "—" if r50 is None or rw is None else f"{r50:.2f}× / {rw:.2f}×"
        cpu = _ratio(many.outcome.cpu_ms_per_photo, one.outcome.cpu_ms_per_photo)
        pg = _ratio(many.postgres_ms_per_photo, one.postgres_ms_per_photo)
        rows += [_nodes_row(one), _nodes_row(many), [f"{many.nodes} ÷ 1", "", "", ratio, cpu, pg, ""]]
    took = f" (took {result.seconds:.0f} s with PostgreSQL and the nodes' starts)"
    return [f"{result.scenario.title}{took}:", "", *markdown_table(NODES_HEADER, rows)]


def nodes_section(lines: list[str]) -> list[str]:
    """The page's section on several nodes against one (bench/nodes.py)."""
    cores = os.cpu_count() or 2
    return [
        "## Two nodes against one, on one PostgreSQL",
        "",
        "The same booth load against one node on PostgreSQL, then against two nodes on the same PostgreSQL "
        "with the booths spread round-robin over them (booth *b* posts to node *b* mod 2, at the node's own "
        "port; not through Caddy, whose relaying of every upload would spend the shared cores in the two-node "
        "run only). Overhead is the booth's answer time minus the fake provider's fixed latency; *errors* are "
        "answers other than 200. Each run starts fresh nodes on a fresh database of one PostgreSQL server; the "
        f"image workers are split between the nodes (one node: {cores}, two nodes: {max(1, cores // 2)} each), "
        "so as many photos are decoded at once in both. Media stay in each node's data folder (no bucket). "
        "CPU per photo is the nodes' with their workers, and PostgreSQL's with its backends.",
        "",
        f"What the figure can and cannot show: both nodes run on the same {cores} cores, with PostgreSQL and "
        "the booths, so the second node brings no capacity: there is no more CPU to prepare photos with. The "
        "ratio is the cost of coordination through PostgreSQL (two processes with their own connections, job "
        "rows and background loops on one database) and of a second process on the same cores; about 1× means "
        "that cost is small against a photo's own work. Below 1× is no capacity gain either: two event loops "
        "can share out work that one node does on one thread, and on a machine busy with other work two "
        "processes get a bigger share of the cores than one, so compare runs made on a quiet machine. It "
        "cannot tell what two nodes on two machines sustain, nor what a network between a node and "
        "PostgreSQL or a shared bucket costs.",
        "",
        *lines,
        "",
    ]
