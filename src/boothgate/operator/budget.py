"""An event's budget: `max_paid_calls` and/or `max_cost` (in the statistics currency).

Each paid call is *reserved* before it is made and *settled* after it:

- reserve: one conditional UPDATE on the event's row — `reserved += 1, reserved_cost += estimate`
  only WHERE `spent + reserved + 1 <= max_paid_calls` and `spent_cost + reserved_cost + estimate <= cap`.
  The database applies it atomically (SQLite: our single writer plus the file lock; PostgreSQL: the row
  lock UPDATE takes), so 16 booths at once can never reserve more calls than the cap: the in-flight
  allowance for `max_paid_calls` is **0**.
- settle: the reservation is returned and, when the call was really made, `spent_calls += 1` and
  `spent_cost += the provider's figure` (its estimate when it gave none; 0 for a failed call).
  For `max_cost` the overshoot is bounded by the calls in flight × (real cost − estimate).

A reservation nobody settled (the server stopped mid-call) is cleared at start (`recover`).
Calls to a free provider (the offline engine) never touch the budget.

Warnings: when a change of the counters takes the used share (spent + reserved, as `state` shows it) to
80 % or to 100 %, a durable task `event.budget_warning` is enqueued in the same transaction, its key
naming the event, the threshold and the budget's caps — so each crossing is told once (an enqueue of the
same key is a no-op) and a budget the operator raises can be crossed, and told, again. The client API
turns the task into `event.budget_warning` webhook deliveries (api/webhooks.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from boothgate import errors
from boothgate.providers.base import Provider
from boothgate.settings import Settings
from boothgate.storage.db import Database
from boothgate.storage.models import Event, Slot
from boothgate.work import TaskQueue

log = logging.getLogger("boothgate.budget")

WARN_AT = 0.8  # share of the budget at which the live view and the tab warn
WARNING_KIND = "event.budget_warning"  # the durable task of one threshold crossing
THRESHOLDS = (WARN_AT, 1.0)


@dataclass
class Hold:
    """One reserved paid call."""

    slot: str
    estimate_usd: float
    called: bool = False
    cost_usd: float | None = None
    settled: bool = False
    # The booth's answer handed the call on as a late result (booth/late.py): settled at its estimate now,
    # and corrected to the provider's figure when the late result is stored (`settle_late`).
    late: bool = False


@dataclass
class Spend:
    """What one job reserved of its event's budget."""

    event_id: int | None
    holds: list[Hold] = field(default_factory=list)
    denied: bool = False  # the admitted slot could not reserve: its paid provider is not called


def cap_usd(event: Event, settings: Settings) -> float | None:
    if event.max_cost is None:
        return None
    return event.max_cost / settings.rub_per_usd if settings.cost_currency == "rub" else event.max_cost


def to_currency(usd: float, settings: Settings) -> float:
    return usd * settings.rub_per_usd if settings.cost_currency == "rub" else usd


class Budget:
    def __init__(
        self, db: Database, queue: TaskQueue | None = None, settings: Callable[[], Settings] | None = None
    ) -> None:
        self.db = db
        # Both set by runtime.py: where threshold crossings are enqueued, and the settings (currency) to judge them.
        self.queue = queue
        self.settings = settings
        self._settling: set[asyncio.Task[None]] = set()

    async def recover(self) -> None:
        """No job is in flight at start: reservations left by a stop are returned."""
        async with self.db.write() as session:
            await session.execute(update(Event).values(reserved_calls=0, reserved_cost_usd=0.0))

    async def reserve(self, event_id: int, estimate_usd: float, settings: Settings) -> bool:
        """Reserve one paid call for the event, or False when it would pass a cap (atomic)."""
        async with self.db.read() as session:
            event = await session.get(Event, event_id)
        if event is None:
            return True
        cap = cap_usd(event, settings)
        conditions = [Event.id == event_id]
        if event.max_paid_calls is not None:
            conditions.append(Event.spent_calls + Event.reserved_calls + 1 <= Event.max_paid_calls)
        if cap is not None:
            used = Event.spent_cost_usd + Event.reserved_cost_usd
            # An unknown price (estimate 0) still stops once the cost is spent.
            conditions.append(used + estimate_usd <= cap if estimate_usd > 0 else used < cap)
        statement = (
            update(Event)
            .where(*conditions)
            .values(
                reserved_calls=Event.reserved_calls + 1,
                reserved_cost_usd=Event.reserved_cost_usd + estimate_usd,
            )
            .execution_options(synchronize_session=False)
        )
        async with self.db.write() as session:
            result: Any = await session.execute(statement)
            if result.rowcount:
                await self.warn_if_crossed(session, event_id, settings)
        return bool(result.rowcount)

    async def warn_if_crossed(self, session: AsyncSession, event_id: int | None, settings: Settings | None) -> int:
        """In the caller's transaction, after it changed the counters: one task per threshold the used
        share has reached (a no-op for a crossing already told). Returns how many were new."""
        if self.queue is None or event_id is None:
            return 0
        settings = settings or (self.settings() if self.settings is not None else None)
        event = await session.get(Event, event_id, populate_existing=True)
        if settings is None or event is None or event.deleted_at is not None:
            return 0
        now = state(event, settings)
        share = now["used_share"]
        added = 0
        for threshold in THRESHOLDS:
            if share is None or share < threshold:
                continue
            key = f"budget:{event.id}:{threshold:g}:{event.max_paid_calls}:{event.max_cost}"
            data = {"event_id": event.id, "name": event.name, "threshold": threshold, **now}
            added += await self.queue.enqueue(WARNING_KIND, key, {"data": data}, session=session)
        return added

    async def hold(self, spend: Spend, slot: Slot, estimate_usd: float | None, settings: Settings) -> Hold | None:
        """Reserve a paid call of `slot` for this job, or raise BudgetSpent."""
        if spend.event_id is None:
            return None
        estimate = max(0.0, estimate_usd or 0.0)
        if not await self.reserve(spend.event_id, estimate, settings):
            raise errors.BudgetSpent(
                f"The event's budget is spent: slot {slot.provider}/{slot.number} does not call its paid provider."
            )
        hold = Hold(f"{slot.provider}/{slot.number}", estimate)
        spend.holds.append(hold)
        return hold

    async def admit(self, event_id: int | None, slot: Slot, provider: Provider, settings: Settings) -> Spend:
        """At admission: reserve the admitted slot's paid call (its estimate). A spent budget does not
        fail the job here — the slot's provider is not called and the fall-back step hands the photo on."""
        spend = Spend(event_id)
        if event_id is None or not provider.paid:
            return spend
        try:
            await self.hold(spend, slot, _estimate(provider, slot), settings)
        except errors.BudgetSpent:
            spend.denied = True
        return spend

    async def for_call(
        self, spend: Spend | None, slot: Slot, provider: Provider, own: bool, settings: Settings
    ) -> Hold | None:
        """The reservation a paid call is about to use (the admitted slot's, or a fresh one for a
        fallback slot on a paid provider), or BudgetSpent when there is none to be had."""
        if spend is None or spend.event_id is None or not provider.paid:
            return None
        key = f"{slot.provider}/{slot.number}"
        if own:
            if spend.denied:
                raise errors.BudgetSpent(f"The event's budget is spent: slot {key} does not call its paid provider.")
            unused = next((h for h in spend.holds if h.slot == key and not h.called and not h.settled), None)
            if unused is not None:
                return unused
        return await self.hold(spend, slot, _estimate(provider, slot), settings)

    def settle_soon(self, spend: Spend) -> None:
        """Settle in the background: the booth's answer never waits for the bookkeeping."""
        if not any(not h.settled for h in spend.holds):
            return
        task = asyncio.create_task(self.settle(spend))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def settle(self, spend: Spend) -> None:
        if spend.event_id is None:
            return
        for hold in spend.holds:
            if hold.settled:
                continue
            hold.settled = True
            cost = 0.0
            if hold.late:  # the call goes on: its estimate now, the provider's figure when it is stored
                cost = hold.estimate_usd
            elif hold.called:  # the provider's figure; its estimate when it gave none
                cost = hold.cost_usd if hold.cost_usd is not None else hold.estimate_usd
            statement = (
                update(Event)
                .where(Event.id == spend.event_id)
                .values(
                    reserved_calls=Event.reserved_calls - 1,
                    reserved_cost_usd=Event.reserved_cost_usd - hold.estimate_usd,
                    spent_calls=Event.spent_calls + int(hold.called),
                    spent_cost_usd=Event.spent_cost_usd + cost,
                )
                .execution_options(synchronize_session=False)
            )
            try:
                async with self.db.write() as session:
                    await session.execute(statement)
                    await self.warn_if_crossed(session, spend.event_id, None)
            except Exception:
                log.exception("could not settle a paid call of event %s", spend.event_id)

    def hand_on_late(self, spend: Spend | None, slot: str) -> float | None:
        """The booth's answer hands the slot's running call on as a late result: its hold is settled at the
        estimate; returns that estimate (what `settle_late` corrects), or None when the call held nothing."""
        if spend is None or spend.event_id is None:
            return None
        hold = next((h for h in spend.holds if h.slot == slot and h.called and not h.settled), None)
        if hold is None:
            return None
        hold.late = True
        return hold.estimate_usd

    async def reserve_late(self, event_id: int | None, estimate_usd: float, settings: Settings) -> bool:
        """A late run started again after a restart is a paid call of its own: reserved like any other."""
        return event_id is None or await self.reserve(event_id, estimate_usd, settings)

    async def settle_late(
        self,
        session: AsyncSession,
        event_id: int | None,
        counted_usd: float,
        cost_usd: float | None,
        reserved: bool,
    ) -> None:
        """In the transaction that stores a late result (so it is counted once): the event's counters get
        the provider's figure. `counted_usd` is what was counted for the call already — the booth-time
        call's estimate — or, with `reserved`, the estimate a restarted call reserved (returned here)."""
        if event_id is None:
            return
        real = counted_usd if cost_usd is None else max(0.0, float(cost_usd))
        values: dict[str, Any] = {}
        if reserved:
            values.update(
                reserved_calls=Event.reserved_calls - 1,
                reserved_cost_usd=Event.reserved_cost_usd - counted_usd,
                spent_calls=Event.spent_calls + 1,
                spent_cost_usd=Event.spent_cost_usd + real,
            )
        elif real != counted_usd:
            values["spent_cost_usd"] = Event.spent_cost_usd + (real - counted_usd)
        if not values:
            return
        statement = update(Event).where(Event.id == event_id).values(**values)
        await session.execute(statement.execution_options(synchronize_session=False))
        await self.warn_if_crossed(session, event_id, None)

    async def drain(self) -> None:
        """Wait for settlements under way (stop, tests)."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)


def _estimate(provider: Provider, slot: Slot) -> float | None:
    try:
        return provider.estimated_cost_usd(slot.options or {})
    except Exception:  # an estimate is a nicety: never a reason to fail a photo
        return None


def state(event: Event, settings: Settings) -> dict[str, Any]:
    """The budget as the Events page, the tab and the live view show it."""
    used_calls = event.spent_calls + event.reserved_calls
    used_usd = event.spent_cost_usd + event.reserved_cost_usd
    shares = []
    if event.max_paid_calls is not None:
        shares.append(used_calls / event.max_paid_calls if event.max_paid_calls else 1.0)
    cap = cap_usd(event, settings)
    if cap is not None:
        shares.append(used_usd / cap if cap else 1.0)
    share = max(shares) if shares else None
    return {
        "max_paid_calls": event.max_paid_calls,
        "max_cost": event.max_cost,
        "currency": settings.cost_currency,
        "paid_calls": event.spent_calls,
        "in_flight": event.reserved_calls,
        "cost": round(to_currency(event.spent_cost_usd, settings), 4),
        "used_share": round(share, 4) if share is not None else None,
        "warning": share is not None and share >= WARN_AT,
        "spent": share is not None and share >= 1.0,
    }
