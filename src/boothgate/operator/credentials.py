"""The admin password and the upload password: generated on first start, kept server-side.

The admin password is stored as a scrypt hash; the upload password is stored as is, because the
operator reads it in the statistics panel to type it into the booth program. Both compare in
constant time. A value from the environment always wins and cannot be rotated here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from boothgate.redaction import REDACTOR
from boothgate.settings import Settings
from boothgate.storage.db import Database
from boothgate.storage.models import StoredSetting, utcnow

ADMIN_HASH_KEY = "admin_password_hash"
UPLOAD_KEY = "upload_password"


def generate_password(length: int = 16) -> str:
    alphabet = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"  # no look-alikes
    return "".join(secrets.choice(alphabet) for _ in range(length))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_hash(password: str, stored: str) -> bool:
    try:
        _, salt_hex, digest_hex = stored.split("$")
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1)
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


T = TypeVar("T")
# Admin password checks (scrypt, ~50 ms of CPU each) waiting for the hashing thread beyond the one running.
HASH_WAITING = 4
# Refused checks this recent make /health say sign-ins are being starved.
STARVED_WINDOW_SECONDS = 60.0


class HashingBusy(Exception):
    """Too many admin password checks at once or in a second: refused unchecked (answered 429)."""


class HashGate:
    """Password hashing in its own small bounded pool with a global rate (issue 31, class 12).

    Each wrong admin password costs a scrypt hash. In the default thread pool that the booths' file steps
    use, a few dozen addresses (each within its own allowance) would queue the booths behind hashes. Here:
    one thread of its own, at most `HASH_WAITING` checks waiting, and at most `per_second` checks a second
    from every address together (a token bucket); the rest are refused at once without hashing."""

    def __init__(self, per_second: Callable[[], float]) -> None:
        self.per_second = per_second
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="boothgate-password-hash")
        self._inside = 0
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._started = False
        self.hashed = 0
        self.refused = 0
        self._refused_at: deque[float] = deque(maxlen=1000)

    def _take(self) -> bool:
        now = time.monotonic()
        rate = max(0.1, self.per_second())
        burst = max(1.0, rate)
        if not self._started:
            self._tokens, self._started = burst, True
        self._tokens = min(burst, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        if self._tokens < 1.0 or self._inside > HASH_WAITING:
            self.refused += 1
            self._refused_at.append(now)
            return False
        self._tokens -= 1.0
        return True

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        if not self._take():
            raise HashingBusy("Too many admin sign-in attempts at once; try again in a moment.")
        self._inside += 1
        try:
            self.hashed += 1
            return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)
        finally:
            self._inside -= 1

    def public(self) -> dict[str, Any]:
        now = time.monotonic()
        recent = sum(1 for t in self._refused_at if now - t <= STARVED_WINDOW_SECONDS)
        return {
            "checks": self.hashed,
            "refused": self.refused,
            "refused_last_minute": recent,
            "starved": recent > 0,
            "per_second": self.per_second(),
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class Generated:
    admin_password: str | None = None
    upload_password: str | None = None


class Credentials:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._admin_hash: str | None = None
        self._upload: str = ""
        # scrypt costs ~50 ms; remember the digest of the last verified password so each API call
        # under Basic Auth does not pay it again.
        self._verified: bytes | None = None
        self.hashing = HashGate(lambda: self.settings.admin_password_checks_per_second)

    async def ensure(self) -> Generated:
        """Load stored credentials; generate the missing ones. Returns what was generated now."""
        generated = Generated()
        async with self.db.write() as session:
            admin_row = await session.get(StoredSetting, ADMIN_HASH_KEY)
            if self.settings.admin_password is None and admin_row is None:
                generated.admin_password = generate_password()
                admin_row = StoredSetting(key=ADMIN_HASH_KEY, value=hash_password(generated.admin_password))
                session.add(admin_row)
            self._admin_hash = admin_row.value if admin_row else None
            upload_row = await session.get(StoredSetting, UPLOAD_KEY)
            if self.settings.upload_password is None and upload_row is None:
                generated.upload_password = generate_password(12)
                upload_row = StoredSetting(key=UPLOAD_KEY, value=generated.upload_password)
                session.add(upload_row)
            self._upload = upload_row.value if upload_row else ""
        if self.settings.upload_password is not None:
            self._upload = self.settings.upload_password.get_secret_value()
        return generated

    @property
    def upload_password(self) -> str:
        return self._upload

    @property
    def upload_password_from_env(self) -> bool:
        return self.settings.upload_password is not None

    def check_upload(self, candidate: str | None) -> bool:
        return candidate is not None and bool(self._upload) and same(candidate, self._upload)

    async def check_admin(self, user: str, password: str) -> bool:
        """The admin's Basic Auth. A stored hash is checked with scrypt (~50 ms of CPU) in a thread: on the
        event loop, every first sign-in and every wrong password would hold up every booth that long."""
        user_ok = same(user, self.settings.admin_user)
        if self.settings.admin_password is not None:
            return same(password, self.settings.admin_password.get_secret_value()) and user_ok
        fingerprint = hashlib.sha256(password.encode("utf-8", "replace")).digest()
        if self._verified is not None and hmac.compare_digest(fingerprint, self._verified):
            return user_ok
        stored = self._admin_hash
        if not stored or not await self.hashing.run(verify_hash, password, stored):
            return False
        self._verified = fingerprint
        return user_ok

    async def rotate_upload(self) -> str:
        if self.upload_password_from_env:
            raise PermissionError("The upload password is set in BOOTHGATE_UPLOAD_PASSWORD; change it there.")
        new = generate_password(12)
        async with self.db.write() as session:
            row = await session.get(StoredSetting, UPLOAD_KEY)
            if row is None:
                session.add(StoredSetting(key=UPLOAD_KEY, value=new))
            else:
                row.value, row.updated_at = new, utcnow()
        self._upload = new
        REDACTOR.protect(new)
        return new
