"""Client API keys: created with a name, scopes and limits, shown once, kept only as a hash.

A key is `bg_` + 43 characters of `secrets.token_urlsafe(32)` (256 random bits), so a plain SHA-256 of it
is enough to store (nothing to brute-force; a slow hash would only cost the event loop). The database is
looked up by that hash and the found hash compared in constant time. Only the first `PREFIX_CHARS`
characters (`bg_` and 7 random ones) are ever shown again — in lists, job rows hold the key's *id*.

Rotation gives a new key; the old one keeps working until the grace period the operator picked ends (its
hash moves to `previous_hash` with `previous_until`). Revocation is immediate: every request looks the key
up in the database.

Limits: requests per minute (a fixed window per key, the window starting on the minute) and photos per day
(the key's jobs since the venue's midnight, counted in the job table, so a restart forgets nothing).
Both answer 429 with `Retry-After` and `X-RateLimit-Limit`, `-Remaining`, `-Reset` (Unix seconds at which
the window resets). The clock is injectable (`clock`), so tests need not wait a real minute.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from boothgate.storage.db import Database
from boothgate.storage.models import ApiKey, Job

KEY_PREFIX = "bg_"
PREFIX_CHARS = 10
WINDOW_SECONDS = 60
# `last_used_at` is written at most this often per key (not one database write per request).
LAST_USED_EVERY_SECONDS = 30.0
MAX_GRACE_SECONDS = 30 * 86400


class KeyRefused(Exception):
    """No key, an unknown, revoked or expired key: 401."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OverLimit(Exception):
    """A key's limit is reached: 429 with the headers that say when to come back."""

    status = 429

    def __init__(self, message: str, code: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.message, self.code, self.headers = message, code, headers


@dataclass(frozen=True)
class Caller:
    """The key a request came with, as the rest of the server sees it (never the key itself)."""

    id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    rate_per_minute: int
    photos_per_day: int

    def may_use(self, provider: str, number: int, event_id: int | None = None) -> bool:
        """Empty scopes: every slot. Otherwise a slot `gemini/3`, a whole tab `gemini`, or `event:7`: the
        slots event 7 holds while it runs (`event_id` is the event holding this slot now, if any)."""
        if not self.scopes or provider in self.scopes or f"{provider}/{number}" in self.scopes:
            return True
        return event_id is not None and f"event:{event_id}" in self.scopes

    @property
    def by_event(self) -> bool:
        """Whether any scope names an event (the caller then looks up which event holds a slot)."""
        return any(scope.startswith("event:") for scope in self.scopes)


@dataclass
class Window:
    start: float
    count: int = 0


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


SCOPE_FORMS = "use a tab (gemini), a slot (gemini/3) or an event (event:7)"


def clean_scopes(scopes: list[str], tabs: list[str]) -> list[str]:
    """Scopes as `tab`, `tab/number` or `event:<id>`; anything else is a ValueError (the route answers 422;
    whether the event exists is the route's check)."""
    cleaned: list[str] = []
    for scope in scopes:
        kind, colon, ident = scope.strip().partition(":")
        if colon:
            if kind != "event" or not ident.isdigit() or not 1 <= int(ident) <= 10**9:
                raise ValueError(f"Unknown scope {scope[:40]!r}: {SCOPE_FORMS}.")
            cleaned.append(f"event:{int(ident)}")
            continue
        tab, sep, number = scope.strip().partition("/")
        if tab not in tabs or (sep and not (number.isdigit() and 1 <= int(number) <= 999)):
            raise ValueError(f"Unknown scope {scope[:40]!r}: {SCOPE_FORMS}.")
        cleaned.append(f"{tab}/{int(number)}" if sep else tab)
    return sorted(set(cleaned))


@dataclass
class ApiKeys:
    db: Database
    clock: Callable[[], float] = time.time  # Unix seconds; tests put a controllable clock here
    today: Callable[[], datetime] | None = None  # the venue's midnight (records/stats.start_of_today)
    _windows: dict[str, Window] = field(default_factory=dict)
    _used: dict[str, float] = field(default_factory=dict)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # --- the operator's side --------------------------------------------------------------------
    async def create(
        self, name: str, scopes: list[str], rate_per_minute: int, photos_per_day: int
    ) -> tuple[ApiKey, str]:
        key = new_key()
        row = ApiKey(
            id=uuid.uuid4().hex,
            name=name.strip()[:100] or "key",
            prefix=key[:PREFIX_CHARS],
            key_hash=digest(key),
            scopes=scopes,
            rate_per_minute=rate_per_minute,
            photos_per_day=photos_per_day,
            created_at=self.now(),
        )
        async with self.db.write() as session:
            session.add(row)
        return row, key

    async def all(self) -> list[ApiKey]:
        async with self.db.read() as session:
            return list((await session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc()))).all())

    async def get(self, key_id: str) -> ApiKey | None:
        async with self.db.read() as session:
            return await session.get(ApiKey, key_id)

    async def revoke(self, key_id: str) -> bool:
        async with self.db.write() as session:
            row = await session.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return row is not None
            row.revoked_at = self.now()
        return True

    async def rotate(self, key_id: str, grace_seconds: float) -> tuple[ApiKey, str] | None:
        """A new key for the same row; the current one keeps working `grace_seconds` more (0: not at all)."""
        grace = max(0.0, min(float(grace_seconds), MAX_GRACE_SECONDS))
        key = new_key()
        async with self.db.write() as session:
            row = await session.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return None
            row.previous_hash, row.previous_prefix = row.key_hash, row.prefix
            row.previous_until = self.now() + timedelta(seconds=grace)
            row.key_hash, row.prefix = digest(key), key[:PREFIX_CHARS]
        return row, key

    async def used_today(self, key_ids: list[str]) -> dict[str, int]:
        if not key_ids:
            return {}
        since = self._midnight()
        query = (
            select(Job.api_key_id, func.count())
            .where(Job.api_key_id.in_(key_ids), Job.created_at >= since)
            .group_by(Job.api_key_id)
        )
        async with self.db.read() as session:
            return {str(k): int(n) for k, n in (await session.execute(query)).all()}

    def public(self, row: ApiKey, used_today: int = 0) -> dict[str, Any]:
        """A key as lists show it: never the key or its hash."""
        now = self.now()
        grace = row.previous_until is not None and _aware(row.previous_until) > now
        return {
            "id": row.id,
            "name": row.name,
            "prefix": row.prefix,
            "scopes": list(row.scopes or []),
            "rate_per_minute": row.rate_per_minute,
            "photos_per_day": row.photos_per_day,
            "created_at": _iso(row.created_at),
            "last_used_at": _iso(row.last_used_at),
            "revoked_at": _iso(row.revoked_at),
            "used_today": used_today,
            "previous_prefix": row.previous_prefix if grace else None,
            "previous_valid_until": _iso(row.previous_until) if grace else None,
        }

    # --- the client's side ----------------------------------------------------------------------
    async def authenticate(self, key: str | None) -> Caller:
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
            raise KeyRefused("Send a valid API key in the X-API-Key header.")
        hashed = digest(key)
        async with self.db.read() as session:
            row = (
                await session.scalars(
                    select(ApiKey).where(or_(ApiKey.key_hash == hashed, ApiKey.previous_hash == hashed))
                )
            ).first()
        if row is None or row.revoked_at is not None:
            raise KeyRefused("This API key is unknown or has been revoked.")
        if hmac.compare_digest(row.key_hash, hashed):
            pass
        elif row.previous_hash is None or not hmac.compare_digest(row.previous_hash, hashed):
            raise KeyRefused("This API key is unknown or has been revoked.")
        elif row.previous_until is None or _aware(row.previous_until) <= self.now():
            raise KeyRefused("This API key was rotated and its grace period has ended; use the new key.")
        await self._touch(row.id)
        return Caller(row.id, row.name, row.prefix, tuple(row.scopes or ()), row.rate_per_minute, row.photos_per_day)

    async def caller(self, key_id: str) -> Caller | None:
        """The key with this id as a Caller (a job queued before a restart runs under it); None if revoked."""
        row = await self.get(key_id) if key_id else None
        if row is None or row.revoked_at is not None:
            return None
        return Caller(row.id, row.name, row.prefix, tuple(row.scopes or ()), row.rate_per_minute, row.photos_per_day)

    def count_request(self, caller: Caller) -> dict[str, str]:
        """Count one request in the key's minute; the rate headers, or OverLimit past the limit."""
        now = self.clock()
        start = math.floor(now / WINDOW_SECONDS) * WINDOW_SECONDS
        window = self._windows.get(caller.id)
        if window is None or window.start != start:
            window = self._windows[caller.id] = Window(start)
        reset = start + WINDOW_SECONDS
        limit = caller.rate_per_minute
        if window.count >= limit:
            raise OverLimit(
                f"This key may send {limit} requests per minute; wait for the next minute.",
                "rate_limited",
                _headers(limit, 0, reset, now),
            )
        window.count += 1
        headers = _headers(limit, limit - window.count, reset, now)
        headers.pop("Retry-After")
        return headers

    async def count_photos(self, caller: Caller, photos: int) -> None:
        """OverLimit when `photos` more would pass the key's photos per day."""
        used = (await self.used_today([caller.id])).get(caller.id, 0)
        if used + photos <= caller.photos_per_day:
            return
        midnight = self._midnight() + timedelta(days=1)
        raise OverLimit(
            f"This key may send {caller.photos_per_day} photos per day; {used} were sent today.",
            "quota_exceeded",
            _headers(caller.photos_per_day, max(0, caller.photos_per_day - used), midnight.timestamp(), self.clock()),
        )

    def _midnight(self) -> datetime:
        if self.today is not None:
            return self.today()
        now = datetime.fromtimestamp(self.clock()).astimezone()
        return now.replace(hour=0, minute=0, second=0, microsecond=0)

    async def _touch(self, key_id: str) -> None:
        now = self.clock()
        if now - self._used.get(key_id, 0.0) < LAST_USED_EVERY_SECONDS:
            return
        self._used[key_id] = now
        async with self.db.write() as session:
            row = await session.get(ApiKey, key_id)
            if row is not None:
                row.last_used_at = self.now()


def _headers(limit: int, remaining: int, reset: float, now: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(math.ceil(reset)),
        "Retry-After": str(max(1, math.ceil(reset - now))),
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return _aware(value).isoformat() if value is not None else None
