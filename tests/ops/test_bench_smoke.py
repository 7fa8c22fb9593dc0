"""Keeps the benchmark harness from rotting: its parts run, small, with no timing assertions.

`make bench` itself is the measurement; this only checks that photos are made, that a booth post
goes through a real server process with the bench provider, and that the report is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import pytest
from bench import nodes, photos
from bench.harness import Photo
from bench.report import (
    Pair,
    floor_table,
    floor_targets,
    nodes_table,
    page,
    scenario_table,
    targets,
    targets_table,
)
from bench.run import run_target
from bench.scenarios import Scenario, unique_photo
from PIL import Image

from tests.postgres_server import pg_bin


@pytest.fixture(autouse=True)
def _bench_data_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(photos, "DATA_DIR", tmp_path / "bench-data")


def test_photos_are_deterministic_camera_like_and_cached() -> None:
    spec = photos.PhotoSpec("tiny", 480, 320, "jpeg")
    first, second = photos.encode(spec, photos.render(spec)), photos.encode(spec, photos.render(spec))
    assert first == second
    # sensor noise and texture: far bigger than a flat test card (~10 kB), like a real photo at q95
    assert len(first) > 480 * 320 * 0.25
    path = photos.photo_path("2mp")
    assert path.parent == photos.DATA_DIR and path.stat().st_mtime == photos.photo_path("2mp").stat().st_mtime


def test_png_spec_has_real_transparency() -> None:
    spec = photos.PhotoSpec("tinypng", 240, 160, "png")
    with Image.open(io.BytesIO(photos.encode(spec, photos.render(spec)))) as im:
        low, high = im.getchannel("A").getextrema()
    assert im.mode == "RGBA" and low == 0 and high == 255


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_unique_photos_differ_in_bytes_not_in_pixels(fmt: str) -> None:
    spec = photos.PhotoSpec("u", 160, 120, fmt)
    data = photos.encode(spec, photos.render(spec))
    photo = Photo("u", data, "IMG.JPG", "image/jpeg")
    a, b = unique_photo(photo, 1).data, unique_photo(photo, 2).data
    assert len({hashlib.sha256(x).digest() for x in (data, a, b)}) == 3
    with Image.open(io.BytesIO(data)) as im0, Image.open(io.BytesIO(a)) as im1:
        assert im0.tobytes() == im1.tobytes()


def test_one_post_through_a_real_server_process(tmp_path: Path) -> None:
    scenario = Scenario("smoke", "1 booth, 2 MP, smoke", "2mp", "sequential", 1, 0.2, posts_per_booth=1)
    ours = run_target("boothgate", scenario, tmp_path / "run")
    assert [p.status for p in ours.posts] == [200], ours.first_errors()
    assert ours.posts[0].answer_bytes > 1000
    [call] = ours.provider_calls  # the warm-up call is not counted
    assert call["photo_mime"] == "image/jpeg" and 0 < call["photo_pixels"] <= 2_000_000
    assert ours.loop is not None and "max_stall_ms" in ours.loop
    assert ours.peak_rss_mb > 10 and ours.overheads_ms()
    pairs = [Pair(ours, None)]
    text = page(
        "cmd", "machine", dt.datetime.now(), 1.0, [], scenario_table(pairs, 0.0), targets_table(targets(pairs, {})), []
    )
    assert "| 1 booth, 2 MP, smoke | 1 | 0 / 0 |" in text


def test_the_prep_floor_and_paced_booths(tmp_path: Path) -> None:
    """The same-run floor answers like our server, and a paced booth reports the time after its last byte."""
    scenario = Scenario(
        "paced", "1 paced booth, 2 MP, smoke", "2mp", "sequential", 1, 0.2, bytes_per_second=2_000_000, floor=True
    )
    floor = run_target("prepfloor", scenario, tmp_path / "floor")
    ours = run_target("boothgate", scenario, tmp_path / "ours")
    for outcome in (floor, ours):
        assert [p.status for p in outcome.posts] == [200], outcome.first_errors()
        assert 0 < outcome.posts[0].after_last_byte < outcome.posts[0].seconds
        assert outcome.peak_tree_mb > 10
    assert ours.workers is not None and ours.workers["stuck"] == 0
    lines = floor_table([Pair(ours, None, floor)])
    assert lines[2].startswith("| 1 paced booth, 2 MP, smoke | 1 | 0 / 0 (0 / 0) |")
    [target] = floor_targets([Pair(ours, None, floor)])
    assert target.text.startswith("4 MB/s uploads") and target.met is not None


@pytest.mark.slow
def test_two_nodes_against_one_on_one_postgresql(tmp_path: Path) -> None:
    """The nodes scenario: one node, then two on the same real PostgreSQL with the booths spread round-robin;
    the slot is switched on through the first node only, so the second node's 200s come from the shared
    database."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    scenario = Scenario("nodes-smoke", "4 booths, 2 MP, smoke", "2mp", "periodic", 4, 0.2, period_seconds=1.0, nodes=2)
    result = nodes.measure(scenario, tmp_path / "nodes")
    assert not result.skipped and result.seconds > 0
    [(one, two)] = result.pairs()
    assert (one.nodes, two.nodes) == (1, 2)
    assert one.calls_per_node == [4] and two.calls_per_node == [2, 2]  # booth b on node b mod 2
    for run in (one, two):
        assert [p.status for p in run.outcome.posts] == [200] * 4, run.outcome.first_errors()
        assert run.outcome.cpu_seconds > 0 and run.postgres_cpu_seconds >= 0
    lines = nodes_table(result)
    assert lines[2].startswith("| nodes | posts (per node) | errors / late | overhead p50 / worst ms |")
    assert lines[4].startswith("| 1 | 4 (4) | 0 / 0 |") and lines[5].startswith("| 2 | 4 (2 + 2) | 0 / 0 |")
    p50 = two.outcome.percentile_ms(50) / one.outcome.percentile_ms(50)  # type: ignore[operator]
    worst = two.outcome.worst_ms() / one.outcome.worst_ms()  # type: ignore[operator]
    assert lines[6].startswith(f"| 2 ÷ 1 |  |  | {p50:.2f}× / {worst:.2f}× |")
    text = page("cmd", "machine", dt.datetime.now(), 1.0, [], [], [], [], None, lines)
    assert "## Two nodes against one, on one PostgreSQL" in text and "| 2 | 4 (2 + 2) | 0 / 0 |" in text
    assert "brings no capacity" in text


def test_the_nodes_scenario_says_when_it_was_not_measured() -> None:
    result = nodes.NodesResult(Scenario("n", "t", "2mp", "burst", 2, 0.1, nodes=2), skipped="no PostgreSQL")
    assert nodes_table(result) == ["Not measured: no PostgreSQL."]
