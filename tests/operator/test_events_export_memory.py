"""A 500-photo event exported from a real server process (`python -m boothgate serve`): the ZIP opens with
`zipfile`, holds every original and result with a CSV row each, and the server's resident memory while
it streams stays within 50 MB of its idle figure (sampled from /proc/<pid>/status every 10 ms).

The 500 jobs are written straight into the server's database and media folders (as the spine leaves them:
photos/<day>/<id>.jpg, results/<day>/<id>.jpg, a job row with the event) — posting 500 photos would only
make the test slow; the export reads exactly what the booth path writes.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN, UPLOAD_PASSWORD, make_jpeg
from tests.fakes.server import free_port

REPO = Path(__file__).resolve().parents[2]
PHOTOS = 500
ALLOWED_GROWTH = 50 * 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextlib.contextmanager
def server_process(tmp_path: Path, data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`python -m boothgate serve` of this checkout on a free port, its data in `data_dir`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTHGATE_")}
    env.update(
        PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}",
        BOOTHGATE_DATA_DIR=str(data_dir),
        BOOTHGATE_PORT=str(port),
        BOOTHGATE_ADMIN_PASSWORD=ADMIN[1],
        BOOTHGATE_UPLOAD_PASSWORD=UPLOAD_PASSWORD,
        BOOTHGATE_IMAGE_WORKERS="1",
    )
    log_path = tmp_path / f"server-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "boothgate", "serve", "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        time.sleep(0.2)
    else:
        raise AssertionError("server did not come up")
    try:
        yield url, process, data_dir
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    with server_process(tmp_path, tmp_path / "data") as running:
        yield running


def _plant_jobs(data_dir: Path, event_id: int, photos: int, width: int) -> dict[str, tuple[str, str]]:
    """`photos` finished jobs of the event, with their files; returns id → (sha of original, sha of result)."""
    sources = [make_jpeg(width, width * 3 // 4, seed=seed, quality=92) for seed in range(8)]
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    (data_dir / "photos" / day).mkdir(parents=True, exist_ok=True)
    (data_dir / "results" / day).mkdir(parents=True, exist_ok=True)
    expected: dict[str, tuple[str, str]] = {}
    rows = []
    start = datetime.now(UTC) - timedelta(hours=2)
    for index in range(photos):
        job_id = uuid.uuid4().hex
        # Unique bytes per job (after the JPEG's end marker: still a valid JPEG).
        original = sources[index % 8] + job_id.encode()
        result = sources[(index + 3) % 8] + job_id.encode()[::-1]
        photo_rel, result_rel = f"photos/{day}/{job_id}.jpg", f"results/{day}/{job_id}.jpg"
        (data_dir / photo_rel).write_bytes(original)
        (data_dir / result_rel).write_bytes(result)
        expected[job_id] = (hashlib.sha256(original).hexdigest(), hashlib.sha256(result).hexdigest())
        created = (start + timedelta(seconds=index * 10)).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows.append(
            (job_id, created, created, "local", 1, "booth", "succeeded", 200, photo_rel, result_rel, "image/jpeg",
             12.5, 0.0, "{}", '{"guest": "Ann"}', "{}", "local/1", "warm film", event_id, len(original))
        )  # fmt: skip
    with sqlite3.connect(data_dir / "boothgate.db", timeout=30) as db:
        db.executemany(
            "INSERT INTO jobs (id, created_at, finished_at, provider, slot_number, source, status, http_status,"
            " photo_path, result_path, result_mime, total_seconds, cost_usd, timings, meta, provider_notes,"
            " served_by, prompt, event_id, photo_bytes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    return expected


def test_500_photo_event_export_streams_in_bounded_memory(
    server: tuple[str, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    _export_in_bounded_memory(server, tmp_path, PHOTOS, 800, min_zip_bytes=100 * 1024 * 1024)


@pytest.mark.slow
def test_5000_photo_event_export_stays_flat(server: tuple[str, subprocess.Popen[bytes], Path], tmp_path: Path) -> None:
    """Ten times the photos (small JPEGs, so the test stays quick): the same 50 MB bound holds — the
    server's memory does not grow with the event — and the ZIP is complete."""
    _export_in_bounded_memory(server, tmp_path, 5000, 320, min_zip_bytes=ALLOWED_GROWTH + 10 * 1024 * 1024)


def _export_in_bounded_memory(
    server: tuple[str, subprocess.Popen[bytes], Path], tmp_path: Path, photos: int, width: int, min_zip_bytes: int
) -> None:
    url, process, data_dir = server
    with httpx.Client(base_url=url, auth=ADMIN, timeout=60) as client:
        created = client.post("/api/events", json={"name": "Big party", "slots": ["local/1"]})
        assert created.status_code == 201, created.text
        event_id = created.json()["id"]
        assert (data_dir / "boothgate.db").exists()
        expected = _plant_jobs(data_dir, event_id, photos, width)
        # Idle: the server has answered a few requests and settled.
        for _ in range(3):
            client.get(f"/api/events/{event_id}/stats")
        time.sleep(1.0)
        idle = rss(process.pid)
        peak = idle
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss(process.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        target = tmp_path / "export.zip"
        seen_progress = False
        try:
            with client.stream("GET", f"/api/events/{event_id}/export.zip") as response, target.open("wb") as out:
                assert response.status_code == 200
                assert response.headers["x-export-files"] == str(2 * photos)
                for index, chunk in enumerate(response.iter_bytes(256 * 1024)):
                    out.write(chunk)
                    if index == 50:  # part-way: the progress of a large export is visible
                        progress = client.get(f"/api/events/{event_id}/export/progress").json()["exports"]
                        seen_progress = bool(progress) and 0 < progress[0]["files_done"] < 2 * photos
        finally:
            stop.set()
            sampler.join()
    size = target.stat().st_size
    growth = peak - idle
    print(f"export: {size / 1e6:.1f} MB zip, server RSS idle {idle / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB, "
          f"growth {growth / 1e6:.1f} MB")  # fmt: skip
    assert size > min_zip_bytes  # more than the allowed growth: it cannot have been built in memory
    assert growth < ALLOWED_GROWTH, f"server grew by {growth / 1e6:.1f} MB"
    assert seen_progress
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        rows = list(csv.DictReader(io.StringIO(archive.read("jobs.csv").decode("utf-8"))))
        assert len(rows) == photos and {r["id"] for r in rows} == set(expected)
        for row in rows:
            original_sha, result_sha = expected[row["id"]]
            assert row["original"] in names and row["result"] in names
            assert hashlib.sha256(archive.read(row["original"])).hexdigest() == original_sha
            assert hashlib.sha256(archive.read(row["result"])).hexdigest() == result_sha
        assert len([n for n in names if n.startswith(("originals/", "results/"))]) == 2 * photos
