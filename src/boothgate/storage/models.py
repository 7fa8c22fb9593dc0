"""Database tables. Nothing SQLite-only: the same models run on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[dict[str, str]]: JSON,
        list[str]: JSON,
        list[dict[str, Any]]: JSON,
        datetime: DateTime(timezone=True),
    }


class Slot(Base):
    """One of the 20 presets of a provider tab."""

    __tablename__ = "slots"
    __table_args__ = (UniqueConstraint("provider", "number", name="uq_slot_provider_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    number: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(32), default="prompt")
    prompt: Mapped[str] = mapped_column(Text, default="")
    reference_path: Mapped[str | None] = mapped_column(String(500), default=None)
    reference_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # Issue 28: the references after the first, in order: [{"path", "sha256"}] (the first is the two columns
    # above, so the single-reference routes keep meaning "the first").
    more_references: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, default=None)
    output_format: Mapped[str] = mapped_column(String(8), default="jpeg")
    on_failure: Mapped[str] = mapped_column(String(16), default="error")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Another slot ("local/3") that gets the photo when this slot's provider fails or will not finish in time.
    fallback: Mapped[str | None] = mapped_column(String(40), default=None)
    # How the result is fitted to the print layout: match_photo | as_returned | fixed (with result_size "WxH").
    result_shape: Mapped[str] = mapped_column(String(16), default="match_photo", server_default="match_photo")
    result_size: Mapped[str | None] = mapped_column(String(16), default=None)
    # A transparent PNG (frame, logo) laid over the result; stored by content like references.
    overlay_path: Mapped[str | None] = mapped_column(String(500), default=None)
    overlay_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # NSFW check before/after the AI: {"before": bool, "after": bool, "threshold": float, "on_hit": ...}.
    moderation: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The guest's copy (issue 30): {"qr": bool, "corner": "bottom_right"|…, "size": 0.12, "label": "…"}.
    share: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Seconds the slot's own provider may go on in the background after a fallback served (0 = off).
    late_result_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Bumped on every change, so a resent photo after an edit is processed again, not deduplicated.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """One booth request through one slot: status, timings, reason, metadata."""

    __tablename__ = "jobs"
    # The live view and statistics read booth jobs of a time window, per provider (migration 0004).
    __table_args__ = (
        Index("ix_jobs_source_created_at", "source", "created_at"),
        Index("ix_jobs_provider_created_at", "provider", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    provider: Mapped[str] = mapped_column(String(32), index=True)
    slot_number: Mapped[int | None] = mapped_column(Integer, default=None)
    slot_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    source: Mapped[str] = mapped_column(String(16), default="booth")  # booth | try | rehearsal
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    http_status: Mapped[int | None] = mapped_column(Integer, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    photo_path: Mapped[str | None] = mapped_column(String(500), default=None)
    photo_sha256: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    photo_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    result_path: Mapped[str | None] = mapped_column(String(500), default=None)
    result_mime: Mapped[str | None] = mapped_column(String(32), default=None)
    trash_path: Mapped[str | None] = mapped_column(String(500), default=None)
    reused_from: Mapped[str | None] = mapped_column(String(32), default=None)
    total_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    provider_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # booth form fields (never the password)
    provider_notes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # model, attempts, usage...
    # The slot that produced the answer ("local/1" when a fallback served the guest) and why it had to.
    served_by: Mapped[str | None] = mapped_column(String(40), default=None)
    fallback_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    # The prompt as sent, with the booth's placeholders filled in.
    prompt: Mapped[str | None] = mapped_column(Text, default=None)
    # NSFW check scores and the decision: {"before": {...}, "after": {...}}.
    moderation: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The guest's page /p/<token> (≥128 random bits, not derived from the id); None for try/rehearsal jobs.
    share_token: Mapped[str | None] = mapped_column(String(64), default=None, unique=True, index=True)
    # The provider's result that arrived after a fallback served: {"status": "running"|"delivered"|"expired",
    # "served_by", "slot", "until", "calls", "cost_usd", "delivered_at", "reason"}; its shaped image's path.
    late: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    late_result_path: Mapped[str | None] = mapped_column(String(500), default=None)
    # What happened to the job after its answer: [{"at", "event", ...}] (a guest's deletion, a late result).
    history: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    # The guest deleted their photo: files gone for good, the row kept (it still counts).
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # The operator hid it from galleries (None: not hidden; nullable so journal rows need no value).
    gallery_hidden: Mapped[bool | None] = mapped_column(Boolean, default=None, nullable=True)

    # The event the slot belonged to when the photo was admitted (operator/events.py); None outside any.
    event_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)

    # The client API (source "api"): the key that sent it (its id, never the key) and its batch, if any.
    api_key_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    batch_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)


class Gallery(Base):
    """A public page /g/<token> with the results of chosen slots (or of an event), optionally behind a PIN."""

    __tablename__ = "galleries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # ["gemini/1", "local/3"]: whose results it shows (when no event is given).
    slots: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # The events engineer's event this gallery belongs to (wired by the lead); None: by slots.
    event_id: Mapped[int | None] = mapped_column(Integer, default=None, nullable=True, index=True)
    pin_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Event(Base):
    """An event the operator works in: a time window, the slots it uses, a budget, a retention.

    A deleted event keeps its row (`deleted_at` set, slots freed) so its statistics stay readable.
    The budget's counters are kept here and changed by one conditional UPDATE each (operator/budget.py).
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # ["gemini/1", "local/2"]: a slot is in at most one event whose window overlaps another's.
    slots: Mapped[list[str]] = mapped_column(JSON, default=list)
    gallery_token: Mapped[str] = mapped_column(String(64), unique=True)
    max_paid_calls: Mapped[int | None] = mapped_column(Integer, default=None)
    max_cost: Mapped[float | None] = mapped_column(Float, default=None)  # in the statistics currency
    retention_days: Mapped[int | None] = mapped_column(Integer, default=None)  # None: the server's setting
    spent_calls: Mapped[int] = mapped_column(Integer, default=0)
    spent_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    reserved_calls: Mapped[int] = mapped_column(Integer, default=0)
    reserved_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    cleaned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class StoredSetting(Base):
    """Server-side values: generated passwords and settings changed on the settings page."""

    __tablename__ = "stored_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RefusedCapability(Base):
    """A field a provider's model answered 400 to (issue 28): not sent to that model again, across restarts,
    until the operator forgets it on the settings page."""

    __tablename__ = "refused_capabilities"
    __table_args__ = (UniqueConstraint("provider", "model", "field", name="uq_refused_capability"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    field: Mapped[str] = mapped_column(String(80))
    # What the service said (trimmed; never a key: provider messages go through redaction first).
    message: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProviderKeyFigures(Base):
    """Calls and failures per API key of a provider (issue 28), kept across restarts for the statistics.
    A key is known only by its masked name (first 4 … last 4): never its value, never a hash of it."""

    __tablename__ = "provider_key_figures"
    __table_args__ = (UniqueConstraint("provider", "key_masked", name="uq_provider_key_figures"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(40))
    key_masked: Mapped[str] = mapped_column(String(20))
    calls: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OperatorSpend(Base):
    """A paid call the operator made outside a guest's photo (issue 28): a reference made from a prompt.
    Counted in the statistics beside the booth's costs, never as a photo."""

    __tablename__ = "operator_spend"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(40))
    what: Mapped[str] = mapped_column(String(40))  # "reference_from_prompt"
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Task(Base):
    """Durable background work (boothgate/work/): one row per unit of work, claimed under a lease.

    `run_after` and `lease_until` are Unix seconds (floats), so "due" and "lease expired" compare the same
    way on SQLite and PostgreSQL.
    """

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("key", name="uq_task_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    # The idempotency key: a second enqueue with the same key is a no-op.
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # queued|running|done|failed
    priority: Mapped[int] = mapped_column(Integer, default=100)  # lower runs first
    run_after: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    lease_until: Mapped[float | None] = mapped_column(Float, default=None)
    owner: Mapped[str | None] = mapped_column(String(100), default=None)  # the node id holding the lease
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


# --- the client API (docs/client-api.md) -----------------------------------------------------------
class ApiKey(Base):
    """A client's key: only its SHA-256 is kept (the key itself is shown once); rotation keeps the previous
    hash valid until `previous_until`."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, shown in lists
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    previous_hash: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    previous_prefix: Mapped[str | None] = mapped_column(String(16), default=None)
    previous_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)  # "gemini/1", "gemini" (a tab); empty = all
    rate_per_minute: Mapped[int] = mapped_column(Integer, default=60)
    photos_per_day: Mapped[int] = mapped_column(Integer, default=1000)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Batch(Base):
    """Many photos for one slot, sent by one key; each photo becomes an ordinary job."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(32), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    number: Mapped[int] = mapped_column(Integer)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # prompt variables for every photo
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|completed|cancelled
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class BatchItem(Base):
    __tablename__ = "batch_items"
    __table_args__ = (UniqueConstraint("batch_id", "position", name="uq_batch_item_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(32), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(300))  # the input's name (sanitised), as in the manifest
    path: Mapped[str] = mapped_column(String(500))  # the stored input, relative to the media root
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|succeeded|failed|cancelled
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)


class WebhookEndpoint(Base):
    """Where events are posted; `secret` (whsec_…) signs each delivery and is shown once."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class WebhookDelivery(Base):
    """One event for one endpoint (its id is the `webhook-id`), with every attempt made."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(32), index=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{at, status, error, seconds}]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


# Issue 31, class 9: the live view and statistics read these summaries instead of every job row. A job is
# added to them once it has its final status (records/tallies.py); `jobs.tallied` (migration 0008, kept out
# of the ORM mapping so a whole-row save of a Job never resets it) says which jobs already are. "None"
# dimensions are stored as 0 / "" so the unique keys hold on SQLite and PostgreSQL alike.
TALLY_KEY = (
    "bucket_start",
    "source",
    "provider",
    "slot_number",
    "event_id",
    "api_key_id",
    "status",
    "error_code",
    "fallback_reason",
    "served_by",
)
TIMES_KEY = ("period", "source", "provider", "slot_number", "event_id", "api_key_id")


class JobTally(Base):
    """Counts, cost and answer-time sums of the jobs of one 10-minute bucket that share every dimension."""

    __tablename__ = "job_tallies"
    __table_args__ = (UniqueConstraint(*TALLY_KEY, name="uq_job_tallies_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    source: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    slot_number: Mapped[int] = mapped_column(Integer, default=0)
    event_id: Mapped[int] = mapped_column(Integer, default=0)
    api_key_id: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(64), default="")
    fallback_reason: Mapped[str] = mapped_column(String(200), default="")
    served_by: Mapped[str] = mapped_column(String(40), default="")
    jobs: Mapped[int] = mapped_column(Integer, default=0)
    seconds_n: Mapped[int] = mapped_column(Integer, default=0)  # succeeded answers with a time
    seconds_sum: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    delivered_late: Mapped[int] = mapped_column(Integer, default=0)
    deleted_by_guest: Mapped[int] = mapped_column(Integer, default=0)


class JobTimes(Base):
    """The answer times of succeeded jobs as a histogram in tenths of a second, per period ("m<bucket>"
    per provider and event for the live chart, "d<local date>" and "all" per slot, "e" per event and slot)."""

    __tablename__ = "job_times"
    __table_args__ = (UniqueConstraint(*TIMES_KEY, name="uq_job_times_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(40), index=True)
    source: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    slot_number: Mapped[int] = mapped_column(Integer, default=0)
    event_id: Mapped[int] = mapped_column(Integer, default=0)
    api_key_id: Mapped[str] = mapped_column(String(32), default="")
    bins: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"123": 4}: four answers in (12.2, 12.3] s


class SharedCount(Base):
    """Refused booth requests of one key (a throttled address, a stranger's record budget) in one minute,
    counted by every node together (PostgreSQL only; issue 27). Rows of past minutes are deleted on the way
    (storage/counts.py)."""

    __tablename__ = "shared_counts"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)  # whole minutes since 1970, the database's clock
    hits: Mapped[int] = mapped_column(Integer, default=0)


class SharedBreaker(Base):
    """A provider tab marked offline by some node, until a time of the database's clock (PostgreSQL only;
    issue 27). NULL `open_until`: closed again (storage/breakers.py)."""

    __tablename__ = "shared_breakers"

    tab: Mapped[str] = mapped_column(String(32), primary_key=True)
    open_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    failure: Mapped[str] = mapped_column(String(80), default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SharedModelList(Base):
    """The model list a node last read from a tab's service, with the fingerprint (sha256 of key and base
    URL, never the key) it was read with (PostgreSQL only; issue 27, storage/shared_lists.py)."""

    __tablename__ = "shared_model_lists"

    tab: Mapped[str] = mapped_column(String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    models: Mapped[str] = mapped_column(Text)  # JSON: [{"id": ..., "label": ...}]
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed: Mapped[str | None] = mapped_column(String(64), default=None)  # a fingerprint being read now
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
