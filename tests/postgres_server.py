"""A throw-away PostgreSQL server on a loopback port, from Debian's PostgreSQL server binaries (installed by
scripts/install-test-system-deps.sh). No pytest here: the tests' fixtures (tests/postgres_support.py) and the
benchmark's two-node scenario (bench/nodes.py) both start their server with `running_postgres()`.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.server import free_port


class NoPostgres(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def pg_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    prefix: list[str]
    _names: Iterator[int] = field(default_factory=itertools.count)

    def run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=60)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def start(self) -> None:
        """Start the server (again, after `stop`) and wait until it accepts connections."""
        self.run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o",
                 f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server: "immediate" ends every backend at once, as a crash or a pulled plug would
        (the next start recovers from the WAL); "fast" rolls back open transactions and disconnects."""
        self.run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        status = [*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(status, capture_output=True, timeout=60).returncode == 0

    def postmaster_pid(self) -> int | None:
        """The server's main process (its backends are its children), from postmaster.pid; None if stopped."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def fresh_database(self) -> str:
        """A new empty database on this server; its SQLAlchemy URL."""
        name = f"boothgate{next(self._names)}"
        self.run(str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server for the block (initdb in a new temporary folder); raises NoPostgres when the
    server binaries are not installed. Removed afterwards, data and all."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise NoPostgres("PostgreSQL server binaries are not installed (scripts/install-test-system-deps.sh)")
    # Not under pytest's tmp dir: its parents are private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="boothgate-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres")
        os.chmod(root, 0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bin_dir, root, free_port(), prefix)
    try:
        server.run(str(bin_dir / "initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        server.start()
        yield server
    finally:
        if server.is_running():  # a test may have left it stopped
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
