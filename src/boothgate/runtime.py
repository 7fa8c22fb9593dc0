"""All services of one running server, started and stopped together (no web framework here)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from boothgate import link_secrets, redaction
from boothgate.api import job_queue
from boothgate.api.batches import Batches
from boothgate.api.jobs import JobDesk
from boothgate.api.webhooks import KIND as WEBHOOK_KIND
from boothgate.api.webhooks import Webhooks
from boothgate.booth import late
from boothgate.booth.rehearsal import Rehearsals
from boothgate.booth.spine import Ingest
from boothgate.booth.throttle import Throttle
from boothgate.imaging.pool import Imaging
from boothgate.operator import event_cleanup
from boothgate.operator.api_keys import ApiKeys
from boothgate.operator.budget import WARNING_KIND as BUDGET_WARNING_KIND
from boothgate.operator.budget import Budget
from boothgate.operator.credentials import Credentials, Generated
from boothgate.operator.events import EventService
from boothgate.operator.model_lists import ModelLists
from boothgate.operator.reference_drafts import ReferenceDrafts
from boothgate.operator.slots import SlotService
from boothgate.providers import transport
from boothgate.providers.base import Provider, ProviderContext
from boothgate.providers.capabilities import RefusedCapabilities
from boothgate.providers.key_figures import KeyFigures
from boothgate.providers.keys import KeyPools
from boothgate.providers.registry import Registry
from boothgate.records import recovery, stats, tallies
from boothgate.records.export import Exports
from boothgate.records.jobs import JobStore
from boothgate.records.media_links import MediaLinks
from boothgate.records.retention import Retention
from boothgate.records.trash import TrashBudget
from boothgate.run import offline
from boothgate.run.moderation import Moderation, options_for
from boothgate.settings import Settings
from boothgate.sharing.galleries import Galleries
from boothgate.sharing.pages import GuestPages
from boothgate.storage.breakers import TOPIC as BREAKERS_TOPIC
from boothgate.storage.breakers import SharedBreakers
from boothgate.storage.changes import Changes
from boothgate.storage.config import RuntimeConfig
from boothgate.storage.counts import SharedCounts
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.objects import open_bucket
from boothgate.storage.shared_lists import TOPIC as LISTS_TOPIC
from boothgate.storage.shared_lists import SharedLists
from boothgate.work import Runner, TaskQueue
from boothgate.work.queue import node_id

log = logging.getLogger("boothgate")
# Unknown guest-page or gallery tokens (or wrong gallery PINs) an address may ask for before a lockout.
SHARE_GUESSES = 30
SHARE_LOCKOUT_SECONDS = 600.0


async def _any_slot_checks(slots: SlotService) -> bool:
    """Whether an enabled slot runs the content check (otherwise its model loads on the first check)."""
    return any(
        (options.before or options.after)
        for slot in await slots.find()
        if slot.enabled and (options := options_for(slot))
    )


def _event_of(events: EventService) -> Callable[[str, int], Awaitable[int | None]]:
    """The id of the event holding a slot now (client API keys scoped to an event)."""

    async def event_of(provider: str, number: int) -> int | None:
        held = await events.event_for(provider, number)
        return held.id if held else None

    return event_of


def _http_client(config: RuntimeConfig) -> httpx.AsyncClient:
    # Providers pass a per-request timeout bounded by the deadline; this is only the outer bound.
    # The transport tells the fallback step when a provider's service cannot be reached (run/offline.py);
    # beneath it every answer is bounded and no redirect elsewhere carries the photo or a key (transport.py).
    guard = transport.AnswerGuard(httpx.AsyncHTTPTransport(), lambda: config.settings.provider_answer_max_bytes)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True, transport=offline.ReachTransport(guard)
    )


class SchemaBehind(RuntimeError):
    """The database's schema is older than this version and migrating at start is off."""


async def prepare_schema(db: Database, migrate: bool) -> None:
    """Migrate at start (the default, one node at a time on PostgreSQL), or check `boothgate migrate` ran."""
    if migrate or db.is_sqlite:  # one booth PC: the schema always follows the program, as before
        await db.migrate()
        return
    current, head = await db.revisions()
    if current != head:
        raise SchemaBehind(
            f"The database schema is at {current or 'nothing'}, this version needs {head}: run `boothgate migrate` "
            "once (or set BOOTHGATE_MIGRATE_ON_START=true)."
        )


@dataclass
class Services:
    config: RuntimeConfig
    db: Database
    media: MediaStore
    http: httpx.AsyncClient
    registry: Registry
    imaging: Imaging
    slots: SlotService
    jobs: JobStore
    credentials: Credentials
    booth_throttle: Throttle
    admin_throttle: Throttle
    links: MediaLinks
    ingest: Ingest
    generated: Generated = field(default_factory=Generated)
    moderation: Moderation | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    trash: TrashBudget | None = None
    # Issue 28: images made from a prompt for a slot's reference, until the operator confirms one.
    drafts: ReferenceDrafts = field(default_factory=ReferenceDrafts)
    retention: Retention | None = None  # issue 31: kept-age ledger and clock jumps
    # Issue 23: events and their budgets (the same objects the spine uses).
    events: EventService = field(init=False)
    budget: Budget = field(init=False)
    exports: Exports = field(init=False)
    # Issue 11: live model lists and rehearsals (set in `start`, after the services they use).
    model_lists: ModelLists = field(init=False)
    rehearsals: Rehearsals = field(init=False)
    # Durable background work (boothgate/work/): handlers are registered before `work.start()`.
    work: Runner = field(init=False)
    guest_pages: GuestPages = field(init=False)
    galleries: Galleries = field(init=False)
    share_throttle: Throttle = field(init=False)
    # Issue 26: the client API (keys, jobs, batches, webhooks).
    api_keys: ApiKeys = field(init=False)
    desk: JobDesk = field(init=False)
    batches: Batches = field(init=False)
    webhooks: Webhooks = field(init=False)
    key_figures: KeyFigures = field(init=False)  # issue 28: calls and failures per key, kept in the database

    changes: Changes = field(init=False)
    draining: bool = False  # issue 27: SIGTERM came; /health says 503 until the process ends

    @property
    def settings(self) -> Settings:
        return self.config.settings

    def begin_drain(self) -> None:
        """The node is leaving: the load balancer is told (by /health) and no more background work is
        claimed here; booths still arriving are served until the listener closes."""
        if not self.draining:
            self.draining = True
            self.work.hold()
            log.info("draining: /health answers 503; background work is left to the other nodes")

    @classmethod
    async def start(cls, base: Settings, provider_classes: dict[str, type[Provider]] | None = None) -> Services:
        base.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(base.sqlalchemy_url)
        await prepare_schema(db, base.migrate_on_start)
        config = RuntimeConfig(base, db)
        node = node_id()
        config.changes = changes = Changes(db, node)  # issue 27: settings saved on one node reach the others
        changes.on("settings", config.reload)
        await config.load()
        settings = config.settings
        media = MediaStore(settings.data_dir, open_bucket(settings))  # issue 27: a shared bucket, if set
        http = _http_client(config)
        imaging = Imaging(
            settings.image_workers,
            settings.max_image_pixels,
            settings.jpeg_quality,
            settings.early_decode_memory_bytes,
            memory_ceiling=settings.image_worker_memory_bytes,
        )
        # Issue 28: refused fields (kept in the database) and the key pools outlive every settings change.
        refusals = RefusedCapabilities(db)
        await refusals.load()
        key_pools = KeyPools()
        key_figures = KeyFigures(db, key_pools)
        await key_figures.load()  # a key's calls and failures continue from the last run
        registry = Registry(
            ProviderContext(settings, http, images=imaging.workers, refusals=refusals, keys=key_pools),
            provider_classes,
        )
        await imaging.start()  # worker processes up before the first photo, not during it
        slots = SlotService(db, media, registry, imaging)
        await slots.ensure()
        jobs = JobStore(db, media)
        credentials = Credentials(settings, db)
        generated = await credentials.ensure()
        # Before anything can log: secrets known to the redaction filter, the filter on every handler.
        redaction.protect_settings(settings)
        redaction.REDACTOR.protect(credentials.upload_password, generated.admin_password)
        redaction.install()
        link_secrets.install()  # passwords in upload links: masked in the access log
        prefix = settings.ipv6_throttle_prefix
        booth_throttle = Throttle(settings.auth_max_failures, settings.auth_lockout_seconds, prefix)
        admin_throttle = Throttle(settings.auth_max_failures, settings.auth_lockout_seconds, prefix)
        # Issue 27: on PostgreSQL a booth's wrong passwords, a stranger's records, wrong admin passwords and
        # guesses at guest pages are counted by all nodes (each throttle under its own name; each keeps the
        # rows for its own lockout window: Throttle.share).
        shared_counts = SharedCounts.on(db, 2, settings.shared_count_wait_seconds)
        booth_throttle.share(shared_counts, "booth")
        admin_throttle.share(shared_counts, "admin")
        links = MediaLinks(settings.public_base_url, media)  # any node serves a link (shared bucket)
        moderation = Moderation(
            media.root, imaging, settings.result_long_side_pixels, settings.jpeg_quality, media
        )  # masks shared through the bucket, if set
        if await _any_slot_checks(slots):  # the model (~100 MB) is loaded only where a slot uses it
            moderation.warm()
        events = EventService(db, registry)
        budget = Budget(db)
        await budget.recover()  # nothing is in flight at start: stale reservations go back
        ingest = Ingest(
            config, registry, slots, jobs, media, imaging, credentials, booth_throttle, links, moderation=moderation,
            events=events, budget=budget,
        )  # fmt: skip
        ingest.strangers.shared = shared_counts
        # Issue 27: a tab one node found unreachable is skipped by every node's booths (PostgreSQL).
        breaker = ingest.fallbacks.breaker
        breaker.share(SharedBreakers.on(db, changes))
        changes.on(BREAKERS_TOPIC, breaker.sync, at_start=True)
        services = cls(
            config, db, media, http, registry, imaging, slots, jobs, credentials, booth_throttle,
            admin_throttle, links, ingest, generated, moderation,
        )  # fmt: skip
        # Handlers mostly wait on a provider or the database, so several run at once; CPU work inside them
        # goes to the image workers, where booths come first.
        services.changes = changes
        changes.start()  # PostgreSQL only: one listening connection per node
        services.work = Runner(TaskQueue(db, node), concurrency=8, lease_seconds=settings.work_lease_seconds)
        # Issue 30: the late AI result is background work that survives a restart (booth/late.py).
        ingest.late.runner = services.work
        services.work.register(late.KIND, ingest.late.run)
        services.guest_pages = GuestPages(db, media)
        services.galleries = Galleries(db, media)
        # Guessing page tokens: an address that keeps asking for ones that do not exist is locked out.
        services.share_throttle = Throttle(SHARE_GUESSES, SHARE_LOCKOUT_SECONDS)
        services.share_throttle.share(shared_counts, "guest")
        services.events, services.budget = events, budget
        services.key_figures = key_figures
        services.exports = Exports(db, media)
        services.api_keys = ApiKeys(db, today=stats.start_of_today)
        services.webhooks = Webhooks(db, services.work.queue, lambda: config.settings.webhooks_allow_private)
        services.work.register(WEBHOOK_KIND, services.webhooks.deliver)
        # Issue 26: an event's budget crossing 80 % / 100 % is told to subscribers once per crossing.
        budget.queue, budget.settings = services.work.queue, lambda: config.settings
        services.work.register(BUDGET_WARNING_KIND, services.webhooks.budget_warning)
        ingest.late.notify = services.webhooks.emit  # job.delivered_late
        services.desk = JobDesk(
            ingest,
            registry,
            slots,
            jobs,
            media,
            lambda: config.settings,
            notify=services.webhooks.emit,
            key_of=services.api_keys.caller,
            event_of=_event_of(events),
        )
        # A single API job is durable from its 202 on: queued before a stop, it runs after the restart.
        services.desk.durable(TaskQueue(db))
        services.batches = Batches(
            db, media, services.desk, ingest.traffic, imaging.workers, notify=services.webhooks.emit,
            quota=services.api_keys.count_photos,
        )  # fmt: skip
        # Issue 27: a list one node read is kept for the others (PostgreSQL), with its key's fingerprint.
        services.model_lists = ModelLists(registry, SharedLists.on(db, changes))
        changes.on(LISTS_TOPIC, services.model_lists.sync, at_start=True)
        services.rehearsals = Rehearsals(config, registry, slots, jobs, ingest)
        config.on_change(services._settings_changed)
        # Hardening (issue 14): rows the database could not take before the last stop go in first (recovery
        # reads them); then the journal's disk reserve, its drain, and the trash budget run in the background.
        await ingest.recorder.drain()
        services.trash = TrashBudget(media, db, lambda: config.settings)
        services.tasks.append(asyncio.create_task(ingest.recorder.run_forever()))
        services.tasks.append(asyncio.create_task(services.trash.run_forever()))
        await recovery.recover(jobs, media, resumed=await job_queue.resumable(db))  # API jobs run again
        services.retention = Retention(lambda: config.settings, media, db)
        services.tasks.append(asyncio.create_task(services.retention.run_forever()))
        services.tasks.append(asyncio.create_task(key_figures.run_forever()))
        if media.bucket is not None:  # files the bucket could not take when written go there later
            services.tasks.append(asyncio.create_task(media.run_forever()))
        services.tasks.append(asyncio.create_task(event_cleanup.run_forever(lambda: config.settings, media, db)))
        services.tasks.append(asyncio.create_task(tallies.run_forever(db)))  # the live view's summaries
        services.work.start()  # after every handler is registered and the journal is drained
        services.batches.runner.start()
        assert services.desk.runner is not None
        services.desk.runner.start()
        services.model_lists.start()  # in the background: start-up never waits for the internet
        return services

    async def _settings_changed(self, settings: Settings) -> None:
        redaction.protect_settings(settings)  # a key entered on the settings page
        self.links.public_base_url = settings.public_base_url
        old = self.registry.context
        await self.registry.rebuild(
            ProviderContext(settings, self.http, images=self.imaging.workers, refusals=old.refusals, keys=old.keys)
        )
        self.model_lists.settings_changed()

    async def stop(self) -> None:
        await self.changes.aclose()
        await self.batches.runner.stop(grace_seconds=1.0)  # a batch goes on after a restart
        if self.desk.runner is not None:
            await self.desk.runner.stop(grace_seconds=1.0)  # a queued single job too
        await self.work.stop()  # running tasks are given back to the queue, not lost
        await self.ingest.late.aclose()
        await self.desk.aclose()
        await self.webhooks.aclose()
        await self.model_lists.aclose()
        await self.rehearsals.aclose()
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.budget.drain()
        await self.key_figures.flush_quietly()  # the last figures before the stop
        await self.registry.aclose()
        await self.http.aclose()
        self.imaging.close()
        self.credentials.hashing.close()
        if self.moderation is not None:
            self.moderation.close()
        await self.db.dispose()
