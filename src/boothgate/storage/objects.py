"""The media bucket (issue 27): an S3-compatible object store that several nodes share.

`MediaStore` (storage/media.py) keeps the data folder as each node's working copy and puts every file
another node may need into the bucket under the same relative key (`photos/2026-12-03/<job>.jpg`), before
the write counts as done; a node that lacks a file locally gets it from here.

The client is obstore (Rust's `object_store`, the crate behind Arrow/DataFusion/Polars): one
self-contained wheel with no Python dependencies, a sync API for the worker threads MediaStore's writes
already run in and an async API for the event loop, and timeouts and retries that are configured per
store — so every call here is bounded by `media_timeout_seconds`, and an unreachable bucket is an error
within that time, never a hang. (boto3 in threads would do the same work with botocore's 15 MB and a
thread per call; aioboto3 pulls aiobotocore's pinned botocore.)

Nothing here logs or returns a key: errors carry obstore's message (method, URL, status), which names
the bucket and object but never the credentials.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from boothgate.settings import Settings

# A probe for /health: a small object each node reads back (a real round trip: list alone can be cached).
PROBE_KEY = ".boothgate-health"
# /health asks the bucket at most this often; between asks it repeats the last answer.
CHECK_EVERY_SECONDS = 5.0


class BucketUnavailable(OSError):
    """A bucket call failed or did not finish in time. An OSError, so a failed media write is treated
    like a failed disk write by the callers that already handle those."""


@dataclass(frozen=True)
class BucketAddress:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> BucketAddress:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("BOOTHGATE_MEDIA_URL must look like s3://bucket/prefix")
        return cls(parts.netloc, parts.path.strip("/"))


class Bucket:
    """One bucket (and key prefix) with bounded calls. Sync methods are for worker threads, `a*` for the loop."""

    def __init__(self, settings: Settings) -> None:
        from obstore.store import S3Store  # imported only where a bucket is configured

        address = BucketAddress.parse(settings.media_url)
        self.name = address.bucket
        self.prefix = address.prefix
        self.timeout = settings.media_timeout_seconds
        secret = settings.media_secret_access_key
        config: dict[str, Any] = {"region": settings.media_region or "us-east-1"}
        if settings.media_endpoint_url:
            config["endpoint"] = settings.media_endpoint_url
        if settings.media_access_key_id:
            config["access_key_id"] = settings.media_access_key_id
        if secret is not None and secret.get_secret_value():
            config["secret_access_key"] = secret.get_secret_value()
        bound = f"{max(0.2, self.timeout):g}s"
        self._store = S3Store(
            address.bucket,
            prefix=address.prefix or None,
            config=config,  # type: ignore[arg-type]  # a TypedDict built key by key
            client_options={
                "allow_http": settings.media_endpoint_url.startswith("http://"),
                "timeout": bound,
                "connect_timeout": f"{max(0.2, self.timeout / 2):g}s",
            },
            # One quick retry for a dropped connection; the whole call (retries included) within the bound.
            retry_config={
                "max_retries": 1,
                "retry_timeout": timedelta(seconds=self.timeout),
                "backoff": {"init_backoff": timedelta(milliseconds=50), "max_backoff": timedelta(seconds=1), "base": 2},
            },
        )
        self.problem: str | None = None  # the last call's failure, for /health
        self._checked_at = -CHECK_EVERY_SECONDS

    def describe(self) -> str:
        return f"s3://{self.name}/{self.prefix}".rstrip("/")

    # --- worker threads ---------------------------------------------------------------------
    def put_file(self, key: str, path: Path) -> None:
        import obstore

        self._call(lambda: obstore.put(self._store, key, path.read_bytes()))

    def put_bytes(self, key: str, data: bytes) -> None:
        import obstore

        self._call(lambda: obstore.put(self._store, key, data))

    def get_to(self, key: str, target: Path) -> bool:
        """The object written to `target` (atomically); False when the bucket has no such object."""
        import obstore

        try:
            data = self._call(lambda: bytes(obstore.get(self._store, key).bytes()))
        except FileNotFoundError:
            return False
        _write_fetched(target, data)
        return True

    def delete(self, key: str) -> None:
        import obstore

        self._call(lambda: obstore.delete(self._store, key))

    def delete_prefix(self, prefix: str) -> int:
        """Every object under `prefix` (a retention day folder) deleted; how many."""
        import obstore

        where = prefix.rstrip("/")
        keys = [meta["path"] for page in self._call(lambda: list(obstore.list(self._store, where))) for meta in page]
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            self._call(lambda chunk=chunk: obstore.delete(self._store, chunk))
        return len(keys)

    def _call(self, action: Any) -> Any:
        started = time.monotonic()
        try:
            result = action()
        except FileNotFoundError:
            self.problem = None  # the bucket answered: it just has no such object
            raise
        except Exception as exc:  # obstore raises its own error classes (and OSError subclasses)
            self.problem = _plain(exc)
            raise BucketUnavailable(f"media bucket {self.describe()}: {self.problem}") from None
        if time.monotonic() - started > self.timeout:  # finished, but too slow to count as healthy
            self.problem = f"a call took {time.monotonic() - started:.1f} s"
        else:
            self.problem = None
        return result

    # --- the event loop: obstore's async API (no thread held while the bucket is slow) -----------
    async def aput_file(self, key: str, path: Path) -> None:
        import obstore

        data = await asyncio.to_thread(path.read_bytes)
        await self._acall(obstore.put_async(self._store, key, data))

    async def aput_bytes(self, key: str, data: bytes) -> None:
        import obstore

        await self._acall(obstore.put_async(self._store, key, data))

    async def aget_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when the bucket has no such object."""
        import obstore

        async def read() -> bytes:
            answer = await obstore.get_async(self._store, key)
            return bytes(await answer.bytes_async())

        try:
            return bytes(await self._acall(read()))
        except FileNotFoundError:
            return None

    async def aget_to(self, key: str, target: Path) -> bool:
        """`get_to` without a thread waiting on the bucket; False when there is no such object."""
        data = await self.aget_bytes(key)
        if data is None:
            return False
        await asyncio.to_thread(_write_fetched, target, data)
        return True

    async def check(self) -> str | None:
        """None when the bucket takes a small write now (asked at most every few seconds), else why not."""
        import obstore

        now = time.monotonic()
        if now - self._checked_at < CHECK_EVERY_SECONDS:
            return self.problem
        self._checked_at = now
        try:
            await self._acall(obstore.put_async(self._store, PROBE_KEY, b"ok"))
        except BucketUnavailable:
            pass  # self.problem says why
        return self.problem

    async def _acall(self, work: Any) -> Any:
        # The client's own timeouts bound the call; the outer bound is the belt to those braces, so a
        # wedged connection can never hold a booth past it even if the client's timer did not fire.
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout + 0.5):
                result = await work
        except FileNotFoundError:
            self.problem = None
            raise
        except TimeoutError:
            self.problem = f"no answer within {self.timeout:g} s"
            raise BucketUnavailable(f"media bucket {self.describe()}: {self.problem}") from None
        except Exception as exc:  # obstore's own error classes
            self.problem = _plain(exc)
            raise BucketUnavailable(f"media bucket {self.describe()}: {self.problem}") from None
        slow = time.monotonic() - started > self.timeout
        self.problem = f"a call took {time.monotonic() - started:.1f} s" if slow else None
        return result


def _write_fetched(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.fetch")  # two readers may fetch at once
    tmp.write_bytes(data)
    tmp.replace(target)


def _plain(exc: Exception) -> str:
    """obstore's first line (its debug dump follows after a blank line)."""
    text = str(exc).strip().split("\n\n", 1)[0]
    return text[:300] or type(exc).__name__


def open_bucket(settings: Settings) -> Bucket | None:
    return Bucket(settings) if settings.media_url else None
