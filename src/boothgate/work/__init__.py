"""Durable background work on the database's own primitives: no broker, no protocol of ours.

A unit of work is a row in the `tasks` table (`storage/models.Task`): a kind, an idempotency key
(UNIQUE: enqueueing the same key twice is a no-op), a JSON payload, a state (`queued` → `running` →
`done`/`failed`), `run_after` (not before), a lease (`lease_until` + the `owner` node's id), attempts and
the last error.

- `queue.TaskQueue` — `enqueue(kind, key, payload, run_after=…)`, `claim()`, `renew()`, `finish()`,
  `retry()`. A claim takes one due task under a lease: on PostgreSQL `SELECT … FOR UPDATE SKIP LOCKED` then
  an UPDATE setting the lease (several nodes never take the same row); on SQLite one
  `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING …` (SQLite serialises writers). A task whose lease
  expired (its node died or hung) is due again: another runner takes it over. `enqueue_held()` adds a
  task already claimed by this node, for work whose first attempt is running in this process.
- `runner.Runner` — handlers registered per kind; polls (short interval, woken at once by a local
  enqueue), runs handlers as asyncio tasks under a concurrency bound, renews their leases while they run
  (a handler whose lease was taken over is cancelled), retries failures with exponential backoff up to
  `max_attempts`, and stops gracefully (running tasks are given back, not lost). `adopt()` enqueues held
  and runs at once, beyond the bound (a late result awaiting its own booth-time call: booth/late.py).

Handlers must be idempotent per task: a node that dies after the work but before `finish()` means the
work runs again elsewhere. Write the result and the "done" fact in one place the handler checks first.

May import: `storage/` and the base modules. Nothing above (no records, run, booth, operator or web).
"""

from boothgate.work.queue import Claimed, TaskQueue
from boothgate.work.runner import Context, Handler, Permanent, RetryLater, Runner

__all__ = ["Claimed", "Context", "Handler", "Permanent", "RetryLater", "Runner", "TaskQueue"]
