"""Real `boothgate serve` processes for the multi-node tests: each node its own data dir and port, all of
them on one PostgreSQL (or SQLite for a single node) and the real Gemini tab against one loopback fake."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ADMIN, UPLOAD_PASSWORD
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
        os.killpg(self.process.pid, signum)  # the node's whole process group, as systemd does

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
