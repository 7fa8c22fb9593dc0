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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from boothgate.cli.booth_client import BoothForm, build_multipart, post_photo_async

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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Live child processes (our server's image workers)."""
    pids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        pass
    return pids


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children: live ones, and those already ended and reaped (cutime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    own = sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks
    return own + sum(cpu_seconds(child) for child in children(pid))


def pss_mb(pid: int) -> float:
    """Proportional memory of a process (shared pages split between their users), in MB."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class TreeMemory:
    """Samples the memory of a server and its worker processes (sum of PSS) every 50 ms; keeps the peak.
    A worker's decode peak is in the worker, not in the server's own VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            total = pss_mb(self.pid) + sum(pss_mb(child) for child in children(self.pid))
            self.peak_mb = max(self.peak_mb, total)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

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


def _spawn(module: str, args: list[str], env: dict[str, str], workdir: Path) -> ServerProcess:
    port = free_port()
    log_path = workdir / f"{module.replace('.', '-')}-{port}.log"
    # This tree's own package first: from a git worktree the installed (editable) one may be another tree's.
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    full_env = {**os.environ, **env, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--host", "127.0.0.1", "--port", str(port)],
            env=full_env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(proc, f"http://127.0.0.1:{port}", log_path)


@contextlib.contextmanager
def run_servers(
    module: str, args: list[str], envs: list[dict[str, str]], workdir: Path
) -> Iterator[list[ServerProcess]]:
    """Start one `python -m module args...` per env of `envs` (added to ours), all at once, as systemd starts
    the nodes of a cluster; yield them once every one answers; stop them (SIGINT, then SIGKILL) afterwards."""
    servers: list[ServerProcess] = []
    try:
        servers += [_spawn(module, args, env, workdir) for env in envs]
        for server in servers:
            _wait_ready(server)
        yield servers
    finally:
        running = [s.proc for s in servers if s.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown runs the lifespan's end
        for proc in running:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def run_server(module: str, args: list[str], env: dict[str, str], workdir: Path) -> Iterator[ServerProcess]:
    """Start `python -m module args...` with `env` added; stop it (SIGINT, then SIGKILL) afterwards."""
    with run_servers(module, args, [env], workdir) as [server]:
        yield server


@dataclass
class Post:
    """One booth request as the booth saw it."""

    booth: int
    started: float  # seconds since the scenario began
    seconds: float  # from sending the request to having the whole answer
    status: int  # 0 when the request failed without an HTTP answer
    answer_bytes: int
    error: str = ""
    after_last_byte: float = 0.0  # from the body's last byte leaving the booth to the whole answer


@dataclass
class Photo:
    name: str
    data: bytes
    filename: str
    mime: str


@dataclass
class Booths:
    """The booth side of one scenario: where to post, and what each post got."""

    base_url: str
    upload_path: str
    password: str
    timeout_seconds: float
    bytes_per_second: float | None = None  # pace each body like a booth on a real network
    # Several nodes: booth b posts to spread[b % len(spread)] (round-robin by booth, as each booth is set up
    # with one node's address); empty: every booth posts to base_url.
    spread: tuple[str, ...] = ()
    posts: list[Post] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def body(self, photo: Photo, booth: int, number: int) -> tuple[bytes, str]:
        """The multipart body DSLR Remote Pro would send (built ahead, so a burst leaves at once)."""
        fields = {"user_id": f"booth{booth}", "id": f"CY04N0681113{booth:03d}S2L_{number:08d}.",
                  "name": f"BOOTH-{booth:03d}"}  # fmt: skip
        return build_multipart(photo.data, BoothForm(self.password, fields), photo.filename, "fileToUpload", photo.mime)

    def url(self, booth: int) -> str:
        base = self.spread[booth % len(self.spread)] if self.spread else self.base_url
        return base + self.upload_path

    async def post(self, booth: int, body: tuple[bytes, str]) -> Post:
        """Post one prepared body like the booth (new connection, Expect: 100-continue) and time it."""
        t0 = time.monotonic()
        status, size, error, after = 0, 0, "", 0.0
        try:
            answer = await post_photo_async(
                self.url(booth),
                b"",
                body=body[0],
                headers={"Content-Type": body[1]},
                timeout=self.timeout_seconds,
                bytes_per_second=self.bytes_per_second,
            )
            status, size, after = answer.status, len(answer.body), answer.after_last_byte
            if status != 200:
                error = answer.body[:200].decode("utf-8", "replace")
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        post = Post(booth, t0 - self.started, time.monotonic() - t0, status, size, error, after)
        self.posts.append(post)
        return post


def new_workdir(prefix: str = "boothgate-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
