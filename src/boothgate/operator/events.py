"""Events: the unit an operator works in — a time window, the slots it uses, a budget, a retention.

A slot belongs to at most one event at a time: two events whose windows overlap (an open end runs
forever) cannot share a slot. A booth photo is counted to the event that holds its slot at admission
(`event_for`). Deleting an event frees its slots but keeps its row, so its statistics stay readable.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import bindparam, select

from boothgate.providers.registry import Registry
from boothgate.run import fallback_rules
from boothgate.storage.db import Database
from boothgate.storage.models import Event, utcnow

MAX_SLOTS_PER_EVENT = 200
GALLERY_TOKEN_BYTES = 24  # 192 random bits
# The events begun by `now` and not deleted, built once: every booth photo asks which event holds its slot.
_STARTED = select(Event).where(Event.deleted_at.is_(None), Event.starts_at <= bindparam("now"))


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_paid_calls: int | None = Field(None, ge=0, le=10_000_000)
    max_cost: float | None = Field(None, ge=0, le=1e9)


class EventChange(BaseModel):
    """Create (name required) or change (fields left out stay) an event."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    slots: list[str] | None = Field(None, max_length=MAX_SLOTS_PER_EVENT)
    budget: BudgetIn | None = None
    retention_days: int | None = Field(None, ge=0, le=3650)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("The name is empty.")
        return value.strip() if value is not None else None

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A time without a zone is the server's local time (the venue's clock). Stored in UTC: SQLite keeps
        # a datetime's fields without their offset.
        return None if value is None else aware(value).astimezone(UTC)


class EventInvalid(ValueError):
    """A change the operator must fix: 422 with the field, or 409 when a slot is taken."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.message, self.status = field, message, status

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": [self.field], "msg": self.message, "type": "value_error"}]


def aware(value: datetime) -> datetime:
    """A timezone-aware instant; a naive one is taken as the server's local time."""
    if value.tzinfo is None:
        return value.astimezone()  # Python reads naive as local
    return value


def stored(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC.
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def running(event: Event, now: datetime) -> bool:
    starts, ends = stored(event.starts_at), stored(event.ends_at)
    assert starts is not None
    return event.deleted_at is None and starts <= now and (ends is None or now < ends)


def _overlap(a_start: datetime, a_end: datetime | None, b_start: datetime, b_end: datetime | None) -> bool:
    return (b_end is None or a_start < b_end) and (a_end is None or b_start < a_end)


@dataclass(frozen=True)
class EventRef:
    """What a job needs of its event at admission."""

    id: int
    name: str


class EventService:
    def __init__(self, db: Database, registry: Registry) -> None:
        self.db, self.registry = db, registry

    # --- reading ----------------------------------------------------------------------------
    async def find(self, include_deleted: bool = False) -> list[Event]:
        query = select(Event).order_by(Event.starts_at.desc(), Event.id.desc())
        if not include_deleted:
            query = query.where(Event.deleted_at.is_(None))
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def get(self, event_id: int, include_deleted: bool = False) -> Event | None:
        async with self.db.read() as session:
            event = await session.get(Event, event_id)
        if event is None or (event.deleted_at is not None and not include_deleted):
            return None
        return event

    async def event_for(self, provider: str, number: int, now: datetime | None = None) -> EventRef | None:
        """The event that holds slot `provider/number` now, if any (one read of a small table)."""
        now = now or utcnow()
        key = f"{provider}/{number}"
        async with self.db.read() as session:
            events = (await session.scalars(_STARTED, {"now": now})).all()
        for event in events:
            if key in (event.slots or []) and running(event, now):
                return EventRef(event.id, event.name)
        return None

    async def running_slots(self, now: datetime | None = None) -> dict[str, int]:
        """Every slot a running event holds now, with that event's id (one read of a small table)."""
        now = now or utcnow()
        query = select(Event).where(Event.deleted_at.is_(None), Event.starts_at <= now)
        async with self.db.read() as session:
            events = (await session.scalars(query)).all()
        return {key: event.id for event in events if running(event, now) for key in event.slots or []}

    # --- changing ---------------------------------------------------------------------------
    async def create(self, change: EventChange) -> Event:
        if change.name is None:
            raise EventInvalid("name", "An event needs a name.")
        starts = change.starts_at or utcnow()
        event = Event(
            name=change.name,
            starts_at=starts,
            ends_at=change.ends_at,
            slots=[],
            gallery_token=secrets.token_urlsafe(GALLERY_TOKEN_BYTES),
            retention_days=change.retention_days,
            spent_calls=0,
            spent_cost_usd=0.0,
            reserved_calls=0,
            reserved_cost_usd=0.0,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        if change.budget is not None:
            event.max_paid_calls, event.max_cost = change.budget.max_paid_calls, change.budget.max_cost
        slots = self._checked_slots(change.slots or [])
        _check_window(event.starts_at, event.ends_at)
        async with self.db.write() as session:
            await self._check_free(session, None, slots, event.starts_at, event.ends_at)
            event.slots = slots
            session.add(event)
        return event

    async def update(self, event_id: int, change: EventChange) -> Event | None:
        values = change.model_dump(exclude_unset=True)
        slots = self._checked_slots(change.slots) if "slots" in values and change.slots is not None else None
        async with self.db.write() as session:
            event = await session.get(Event, event_id)
            if event is None or event.deleted_at is not None:
                return None
            if "name" in values:
                if change.name is None:
                    raise EventInvalid("name", "An event needs a name.")
                event.name = change.name
            if "starts_at" in values:
                if change.starts_at is None:
                    raise EventInvalid("starts_at", "An event needs a start.")
                event.starts_at = change.starts_at
            if "ends_at" in values:
                event.ends_at = change.ends_at
            if "budget" in values:
                budget = change.budget or BudgetIn(max_paid_calls=None, max_cost=None)
                event.max_paid_calls, event.max_cost = budget.max_paid_calls, budget.max_cost
            if "retention_days" in values:
                event.retention_days = change.retention_days
            starts, ends = stored(event.starts_at), stored(event.ends_at)
            assert starts is not None
            _check_window(starts, ends)
            wanted = slots if slots is not None else list(event.slots or [])
            await self._check_free(session, event.id, wanted, starts, ends)
            event.slots = wanted
            event.updated_at = utcnow()
        return event

    async def end(self, event_id: int) -> Event | None:
        """End the event now: its slots are free for the next one; clean-up counts from now."""
        async with self.db.write() as session:
            event = await session.get(Event, event_id)
            if event is None or event.deleted_at is not None:
                return None
            now = utcnow()
            ends = stored(event.ends_at)
            if ends is None or ends > now:
                event.ends_at = max(now, stored(event.starts_at) or now)
            event.updated_at = now
        return event

    async def delete(self, event_id: int) -> bool:
        """Forget the event: slots freed, name and counters kept for its statistics (jobs keep event_id)."""
        async with self.db.write() as session:
            event = await session.get(Event, event_id)
            if event is None or event.deleted_at is not None:
                return False
            now = utcnow()
            event.deleted_at = now
            ends = stored(event.ends_at)
            if ends is None or ends > now:
                event.ends_at = max(now, stored(event.starts_at) or now)
            event.slots = []
            event.updated_at = now
        return True

    async def check_slots(self, event_id: int, raw: list[str]) -> list[str]:
        """Whether `event_id` could hold these slots (EventInvalid if not); nothing changes."""
        slots = self._checked_slots(raw)
        async with self.db.read() as session:
            event = await session.get(Event, event_id)
            if event is None:
                raise EventInvalid("id", f"There is no event {event_id}.", status=404)
            starts = stored(event.starts_at)
            assert starts is not None
            await self._check_free(session, event_id, slots, starts, stored(event.ends_at))
        return slots

    def _checked_slots(self, raw: list[str]) -> list[str]:
        seen: list[str] = []
        for value in raw:
            target = fallback_rules.parse(value) if isinstance(value, str) else None
            if target is None or target[0] not in self.registry.tabs:
                raise EventInvalid("slots", f"{str(value)[:40]!r} is not a slot (write it as provider/number).")
            key = f"{target[0]}/{target[1]}"
            if key not in seen:
                seen.append(key)
        return seen

    async def _check_free(
        self, session: Any, own_id: int | None, slots: list[str], starts: datetime, ends: datetime | None
    ) -> None:
        if not slots:
            return
        others = (await session.scalars(select(Event).where(Event.deleted_at.is_(None)))).all()
        for other in others:
            if other.id == own_id:
                continue
            other_start = stored(other.starts_at)
            assert other_start is not None
            if not _overlap(stored(starts) or starts, stored(ends), other_start, stored(other.ends_at)):
                continue
            taken = sorted(set(slots) & set(other.slots or []))
            if taken:
                raise EventInvalid(
                    "slots",
                    f"Slot {', '.join(taken)} already belongs to the event “{other.name}” at that time.",
                    status=409,
                )

    # --- showing ----------------------------------------------------------------------------
    def public(self, event: Event, base_url: str, default_retention_days: int, now: datetime | None = None) -> dict:
        now = now or utcnow()
        starts, ends = stored(event.starts_at), stored(event.ends_at)
        assert starts is not None
        retention = event.retention_days if event.retention_days is not None else default_retention_days
        clean_at = ends + timedelta(days=retention) if ends is not None else None
        if event.deleted_at is not None:
            state = "deleted"
        elif starts > now:
            state = "upcoming"
        elif ends is not None and ends <= now:
            state = "ended"
        else:
            state = "running"
        return {
            "id": event.id,
            "name": event.name,
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat() if ends else None,
            "state": state,
            "slots": list(event.slots or []),
            "gallery_token": event.gallery_token,
            "gallery_url": f"{base_url.rstrip('/')}/g/{event.gallery_token}",
            "budget": {"max_paid_calls": event.max_paid_calls, "max_cost": event.max_cost},
            "retention_days": retention,
            "retention_is_default": event.retention_days is None,
            "clean_up_at": clean_at.isoformat() if clean_at else None,
            "cleaned_at": stored(event.cleaned_at).isoformat() if event.cleaned_at else None,  # type: ignore[union-attr]
            "deleted_at": stored(event.deleted_at).isoformat() if event.deleted_at else None,  # type: ignore[union-attr]
            "created_at": (stored(event.created_at) or now).isoformat(),
        }


def _check_window(starts: datetime, ends: datetime | None) -> None:
    if ends is not None and stored(ends) <= stored(starts):  # type: ignore[operator]
        raise EventInvalid("ends_at", "The end must be after the start.")
