"""Real `boothgate serve` processes for the multi-node tests: each node its own data dir and port, all of
them on one PostgreSQL (or SQLite for a single node) and the real Gemini tab against one loopback fake;
and a real Caddy in front of them running deploy/cluster/Caddyfile, with booths posting through it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.conftest import ADMIN, UPLOAD_PASSWORD, make_jpeg, post_photo_async
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import free_port

GEMINI_KEY = "cluster-gemini-key"


@dataclass
class Node:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)  # the node's whole process group (a crash: SIGKILL)

    def terminate(self) -> None:
        """SIGTERM to the server process alone, as `systemctl stop` does with the unit's KillMode=mixed."""
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, seconds: float) -> int:
        return await asyncio.to_thread(self.process.wait, seconds)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGKILL)
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_node(name: str, root: Path, gemini_url: str, database_url: str = "", **settings: str | float | int) -> Node:
    port = free_port()
    data = root / name
    data.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "BOOTHGATE_DATA_DIR": str(data),
        "BOOTHGATE_DATABASE_URL": database_url,
        "BOOTHGATE_HOST": "127.0.0.1",
        "BOOTHGATE_PORT": str(port),
        "BOOTHGATE_ADMIN_PASSWORD": ADMIN[1],
        "BOOTHGATE_UPLOAD_PASSWORD": UPLOAD_PASSWORD,
        "BOOTHGATE_GEMINI_API_KEY": GEMINI_KEY,
        "BOOTHGATE_GEMINI_BASE_URL": gemini_url,
        "BOOTHGATE_DEADLINE_SECONDS": "40",
        "BOOTHGATE_IMAGE_WORKERS": "1",
        "BOOTHGATE_PUBLIC_BASE_URL": "",
        **{f"BOOTHGATE_{key.upper()}": str(value) for key, value in settings.items()},
    }
    log = data / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "boothgate", "serve", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    return Node(name, process, f"http://127.0.0.1:{port}", log)


async def ready(*nodes: Node, seconds: float = 90) -> None:
    """Every node answers /health with 200 (started, migrated, database reachable)."""
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=5) as client:
        for node in nodes:
            while True:
                assert node.process.poll() is None, f"{node.name} ended at start:\n{node.log_text()}"
                assert time.monotonic() < until, f"{node.name} did not start:\n{node.log_text()}"
                try:
                    if (await client.get(f"{node.base}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)


async def configure_slot(base: str, number: int = 1, **fields: object) -> None:
    async with httpx.AsyncClient(base_url=base, auth=ADMIN, timeout=30) as client:
        body = {"enabled": True, "kind": "prompt", "prompt": "as a pirate", **fields}
        response = await client.put(f"/api/slots/gemini/{number}", json=body)
        assert response.status_code == 200, response.text


# --- several nodes behind a real Caddy (tests/nodes/test_caddy_cluster.py) -----------------------------
RECIPE = Path(__file__).parents[2] / "deploy" / "cluster" / "Caddyfile"


def node_key(name: str) -> str:
    """Each node its own Gemini key (the fake takes them all), so the fake can tell which node called it."""
    return f"{GEMINI_KEY}-{name}"


class ClusterGemini(GeminiFake):
    """The Gemini fake that notes when each generateContent request reached it and with which node's key."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(api_key=GEMINI_KEY)
        self.more_keys = {node_key(name) for name in names}
        self.arrivals: list[tuple[float, str]] = []  # (monotonic time, node name)

    async def _handle(self, request: Request) -> JSONResponse:
        key = request.headers.get("x-goog-api-key", "")
        self.arrivals.append((time.monotonic(), key.removeprefix(f"{GEMINI_KEY}-")))
        return await super()._handle(request)

    def calls(self, name: str, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for at, who in self.arrivals if who == name and since <= at < until)


def start_caddy(home: Path, port: int, nodes: list[Node]) -> subprocess.Popen[bytes]:
    """Debian's Caddy running deploy/cluster/Caddyfile itself, imported unchanged: only its placeholders set
    (a plain-http loopback address, the nodes' ports), no admin endpoint, its storage in `home`."""
    caddy = shutil.which("caddy")
    assert caddy is not None
    home.mkdir(parents=True, exist_ok=True)
    config = home / "Caddyfile"
    config.write_text(f"{{\n\tadmin off\n\tstorage file_system {home / 'storage'}\n}}\nimport {RECIPE}\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "BOOTHGATE_PUBLIC_NAME": f"http://127.0.0.1:{port}",
        "BOOTHGATE_NODES": " ".join(f"127.0.0.1:{node.port}" for node in nodes),
    }
    log = (home / "caddy.log").open("wb")
    return subprocess.Popen(
        [caddy, "run", "--config", str(config), "--adapter", "caddyfile"], env=env, stdout=log, stderr=log
    )


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def front_ready(front: str, caddy: subprocess.Popen[bytes], log: Path, passes: int = 6) -> None:
    """Caddy listens and its health checker has found the nodes healthy (`passes` /health answers through
    it in a row)."""
    until = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=5) as client:
        count = 0
        while count < passes:
            assert caddy.poll() is None, tail(log)
            assert time.monotonic() < until, tail(log)
            try:
                ok = (await client.get(f"{front}/health")).status_code == 200
            except httpx.TransportError:
                ok = False
            count = count + 1 if ok else 0
            await asyncio.sleep(0.2)


@dataclass
class Timed:
    status: int
    content_type: str
    started: float  # monotonic time the booth started sending
    ended: float
    body: bytes
    headers: dict[str, str]


async def burst(urls: dict[int, str], at_once: int) -> dict[int, Timed | BaseException]:
    """Booths posting `at_once` at a time, photo `seed` to `urls[seed]`; each gets an answer or the
    transport error it met."""
    gate = asyncio.Semaphore(at_once)
    photos = {seed: make_jpeg(seed=seed) for seed in urls}

    async def one(seed: int) -> Timed | BaseException:
        async with gate:
            started = time.monotonic()
            try:
                answer = await post_photo_async(urls[seed], photos[seed], UPLOAD_PASSWORD, timeout=60)
            except (TimeoutError, OSError) as error:
                return error
            return Timed(answer.status, answer.content_type, started, time.monotonic(), answer.body, answer.headers)

    answers = await asyncio.gather(*(one(seed) for seed in urls))
    return dict(zip(urls, answers, strict=True))


def photos_on(node: Node, root: Path) -> int:
    """How many originals the node received: each keeps its own working copy, in photos/ or, for a failed
    job, in trash/."""
    return sum(1 for folder in ("photos", "trash") for _ in (root / node.name / folder).rglob("*.jpg"))


async def provider_today(base: str, provider: str = "gemini") -> dict[str, int]:
    async with httpx.AsyncClient(base_url=base, auth=ADMIN, timeout=30) as client:
        response = await client.get("/api/stats")
    assert response.status_code == 200, response.text
    return response.json()["providers"][provider]["today"]  # type: ignore[no-any-return]


def _checked_bad(log: Path, since: float) -> set[str]:
    """The nodes Caddy's active health checker logged a failed check of after `since`."""
    failed = set()
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("logger", "").endswith("health_checker.active") and entry.get("ts", 0) > since:
            failed.add(entry.get("host"))
    return failed


async def caddy_took_out(log: Path, nodes: list[Node], since: float, seconds: float = 15) -> None:
    """Caddy's active health checker logged a failed check of every node after `since` (wall clock, as
    its log's `ts`): each is out of Caddy's rotation now (one failed check takes a node out in Caddy 2.6)."""
    until = time.monotonic() + seconds
    hosts = {f"127.0.0.1:{node.port}" for node in nodes}
    while not hosts <= (failed := await asyncio.to_thread(_checked_bad, log, since)):
        assert time.monotonic() < until, f"Caddy still checks {hosts - failed} as healthy:\n{tail(log)}"
        await asyncio.sleep(0.2)
