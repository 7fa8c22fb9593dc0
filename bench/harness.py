"""Server processes and booth clients for the benchmark.

A server under test runs as its own process (so its peak memory is its own: VmHWM from /proc) on a
free loopback port. Booths are coroutines in the bench process that post like DSLR Remote Pro and
time each answer on the client side, where the booth's wait is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of a process so far, in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class ServerProcess:
    """A running server under test."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def peak_rss_mb(self) -> float:
        return vm_hwm_mb(self.proc.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _wait_ready(server: ServerProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer /health within {timeout:.0f} s:\n{server.log_tail()}")


@contextlib.contextmanager
def run_server(module: str, args: list[str], env: dict[str, str], workdir: Path) -> Iterator[ServerProcess]:
    """Start `python -m module args...` with `env` added; stop it (SIGINT, then SIGKILL) afterwards."""
    port = free_port()
    log_path = workdir / f"{module.replace('.', '-')}-{port}.log"
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--host", "127.0.0.1", "--port", str(port)],
            env=full_env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown runs the lifespan's end
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Post:
    """One booth request as the booth saw it."""

    booth: int
    started: float  # seconds since the scenario began
    seconds: float  # from sending the request to having the whole answer
    status: int  # 0 when the request failed without an HTTP answer
    answer_bytes: int
    error: str = ""


@dataclass
class Photo:
    name: str
    data: bytes
    filename: str
    mime: str


@dataclass
class Booths:
    """The booth side of one scenario: a client, where to post, what the posts got."""

    base_url: str
    upload_path: str
    password: str
    timeout_seconds: float
    posts: list[Post] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def client(self, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        timeout = httpx.Timeout(self.timeout_seconds, connect=self.timeout_seconds)
        return httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=timeout)

    async def post(self, client: httpx.AsyncClient, booth: int, photo: Photo, number: int) -> Post:
        from bench.booth import post_photo

        t0 = time.monotonic()
        status, size, error = 0, 0, ""
        try:
            response = await post_photo(
                client, self.upload_path, photo.data, photo.filename, photo.mime, self.password, booth, number
            )
            status, size = response.status_code, len(response.content)
            if status != 200:
                error = response.text[:200]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        post = Post(booth, t0 - self.started, time.monotonic() - t0, status, size, error)
        self.posts.append(post)
        return post


def settings_env(data_dir: Path, **extra: Any) -> dict[str, str]:
    """Environment for a boothgate server under test: its own data folder and SQLite database."""
    env = {"BOOTHGATE_DATA_DIR": str(data_dir)}
    env.update({f"BOOTHGATE_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def new_workdir(prefix: str = "boothgate-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


async def gather_limited(coros: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*coros))
