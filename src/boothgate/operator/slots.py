"""Slots: the 20 presets of each provider tab. Created on first start, disabled and empty."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from boothgate.errors import BoothError, StorageFailed
from boothgate.imaging.pool import Imaging
from boothgate.operator.slot_update import (
    ShareOptions,
    SlotOptionsInvalid,
    SlotUpdate,
    check_shape,
    checked_size,
    validate_moderation,
)
from boothgate.providers.base import KINDS_NEEDING_REFERENCE, Kind
from boothgate.providers.registry import SLOTS_PER_TAB, Registry
from boothgate.run import fallback_rules, placeholders
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Slot, utcnow

# One slot by its key, built once: every booth photo reads its slot (the values are bound at execution).
_SLOT = select(Slot).where(Slot.provider == bindparam("provider"), Slot.number == bindparam("number"))


class ReferencesFull(BoothError):
    """The slot holds as many references as its provider takes."""

    status = 409
    code = "references_full"


class ReferenceIndexInvalid(BoothError):
    status = 422
    code = "reference_index"


def parse_number(raw: str | int) -> int | None:
    try:
        number = int(raw)
    except (TypeError, ValueError):
        return None
    return number if 1 <= number <= SLOTS_PER_TAB and str(raw).strip().isdigit() else None


class SlotService:
    def __init__(self, db: Database, media: MediaStore, registry: Registry, imaging: Imaging) -> None:
        self.db, self.media, self.registry, self.imaging = db, media, registry, imaging

    async def ensure(self) -> None:
        """Create the 20 slots of every tab that do not exist yet. Several nodes starting at once on one
        PostgreSQL insert the same rows: ON CONFLICT DO NOTHING lets the first one win and the others skip
        (a read-then-insert made the second node fail its start on the unique key)."""
        async with self.db.write() as session:
            existing = {(s.provider, s.number) for s in (await session.scalars(select(Slot))).all()}
            missing = [
                {"provider": provider, "number": number, "options": {}}
                for provider in self.registry.tabs
                for number in range(1, SLOTS_PER_TAB + 1)
                if (provider, number) not in existing
            ]
            if not missing:
                return
            dialect = session.get_bind().dialect.name
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            await session.execute(insert(Slot).values(missing).on_conflict_do_nothing())

    async def find(self, provider: str | None = None) -> list[Slot]:
        query = select(Slot).order_by(Slot.provider, Slot.number)
        if provider is not None:
            query = query.where(Slot.provider == provider)
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def get(self, provider: str, number: int) -> Slot | None:
        async with self.db.read() as session:
            return await session.scalar(_SLOT, {"provider": provider, "number": number})

    def validate_options(self, provider: str, options: dict[str, Any]) -> dict[str, Any]:
        implementation = self.registry.get(provider)
        if implementation is None:
            return options
        try:
            return implementation.validate_options(options).model_dump(mode="json")
        except ValidationError as exc:
            raise SlotOptionsInvalid(
                [{"loc": ["options", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
            ) from exc

    async def update(self, provider: str, number: int, change: SlotUpdate) -> Slot | None:
        values = change.model_dump(exclude_unset=True)
        if values.get("fallback") == "":
            values["fallback"] = None
        if values.get("fallback"):
            values["fallback"] = await self.check_fallback(provider, number, values["fallback"])
        if "options" in values:
            values["options"] = self.validate_options(provider, values["options"] or {})
        if values.get("moderation") is not None:
            values["moderation"] = validate_moderation(values["moderation"])
        if "result_size" in values:
            values["result_size"] = checked_size(values["result_size"])
        if "share" in values:
            values["share"] = change.share.model_dump() if change.share is not None else None
        async with self.db.write() as session:
            slot = await session.scalar(select(Slot).where(Slot.provider == provider, Slot.number == number))
            if slot is None:
                return None
            check_shape(values.get("result_shape", slot.result_shape), values.get("result_size", slot.result_size))
            for key, value in values.items():
                setattr(slot, key, value.value if isinstance(value, Kind) else value)
            slot.revision += 1
            slot.updated_at = utcnow()
        return slot

    async def check_fallback(self, provider: str, number: int, value: str) -> str:
        """The fallback as stored, or SlotOptionsInvalid (a 422 on the card's fallback field)."""

        async def fallback_of(tab: str, slot_number: int) -> str | None:
            slot = await self.get(tab, slot_number)
            if slot is None:
                raise LookupError(f"{tab}/{slot_number}")
            return slot.fallback

        try:
            return await fallback_rules.check(provider, number, value, self.registry.tabs, fallback_of)
        except fallback_rules.FallbackInvalid as exc:
            raise SlotOptionsInvalid([{"loc": ["fallback"], "msg": str(exc), "type": "value_error"}]) from exc

    async def set_reference(self, provider: str, number: int, data: bytes) -> Slot | None:
        """Validate the image like a booth photo (type from bytes, size, full decode) and keep it, stored by
        content: a job admitted with the previous reference keeps using it until it is answered."""
        info = await self.imaging.inspect(data)
        await self.imaging.prepare(data, 250_000)  # a real decode: refuses truncated files
        digest = hashlib.sha256(data).hexdigest()
        path = await _to_thread_write(self.media, data, info.format)
        return await self._swap_file(provider, number, "reference", self.media.relative(path), digest)

    async def remove_reference(self, provider: str, number: int) -> Slot | None:
        """The old single-reference route: removes the first reference (the next one becomes the first)."""
        slot = await self.get(provider, number)
        if slot is None:
            return None
        if not slot.more_references:
            return await self._swap_file(provider, number, "reference", None, None)
        return await self.remove_reference_at(provider, number, 0)

    # --- several references per slot (issue 28) -------------------------------------------------
    def max_references(self, provider: str) -> int:
        """How many reference images the tab's provider takes beside the photo (from its documentation)."""
        implementation = self.registry.get(provider) if self.registry.knows(provider) else None
        return implementation.max_references if implementation is not None else 1

    @staticmethod
    def references(slot: Slot) -> list[dict[str, str]]:
        """Every reference of the slot in order: [{"path", "sha256"}] (the first from the old columns)."""
        first = [{"path": slot.reference_path, "sha256": slot.reference_sha256 or ""}] if slot.reference_path else []
        more = [dict(r) for r in slot.more_references or [] if r.get("path")]
        return first + more

    async def add_reference(self, provider: str, number: int, data: bytes) -> Slot | None:
        """Append one reference (checked like a booth photo); 409 when the provider's limit is reached."""
        slot = await self.get(provider, number)
        if slot is None:
            return None
        limit = self.max_references(provider)
        if len(self.references(slot)) >= limit:
            raise ReferencesFull(
                f"This slot already has {limit} reference image{'s' * (limit != 1)}, as many as "
                f"{provider} takes with one photo: remove one first."
            )
        info = await self.imaging.inspect(data)
        await self.imaging.prepare(data, 250_000)  # a real decode: refuses truncated files
        digest = hashlib.sha256(data).hexdigest()
        path = await _to_thread_write(self.media, data, info.format)
        relative = self.media.relative(path)
        return await self._set_references(provider, number, lambda refs: [*refs, {"path": relative, "sha256": digest}])

    async def remove_reference_at(self, provider: str, number: int, index: int) -> Slot | None:
        def drop(refs: list[dict[str, str]]) -> list[dict[str, str]]:
            if not 0 <= index < len(refs):
                raise ReferenceIndexInvalid(f"There is no reference {index} (the slot has {len(refs)}).")
            return refs[:index] + refs[index + 1 :]

        return await self._set_references(provider, number, drop)

    async def reorder_references(self, provider: str, number: int, order: list[int]) -> Slot | None:
        def reorder(refs: list[dict[str, str]]) -> list[dict[str, str]]:
            if sorted(order) != list(range(len(refs))):
                raise ReferenceIndexInvalid(
                    f"order must list each of the {len(refs)} reference indexes 0..{len(refs) - 1} once."
                )
            return [refs[i] for i in order]

        return await self._set_references(provider, number, reorder)

    async def _set_references(self, provider: str, number: int, change: Any) -> Slot | None:
        """Apply `change` (old list → new list) to the slot's references in one write; files no slot uses
        any more are deleted once no running job holds them."""
        async with self.db.write() as session:
            slot = await session.scalar(select(Slot).where(Slot.provider == provider, Slot.number == number))
            if slot is None:
                return None
            old = self.references(slot)
            new = change(old)
            slot.reference_path = new[0]["path"] if new else None
            slot.reference_sha256 = new[0]["sha256"] if new else None
            slot.more_references = [dict(r) for r in new[1:]] or None
            slot.revision += 1
            slot.updated_at = utcnow()
            kept = {r["path"] for r in new}
            gone = []
            for ref in old:
                if ref["path"] not in kept:
                    unused = await _unused(session, ref["path"], keep=None)
                    if unused is not None:
                        gone.append(unused)
        for relative in gone:
            self._forget(relative)
        return slot

    async def _swap_file(
        self, provider: str, number: int, what: str, relative: str | None, digest: str | None
    ) -> Slot | None:
        """Point the slot's `what` ("reference" or "overlay") at a file stored by content (None removes it); the
        old file is deleted once no slot uses it and no running job holds it."""
        async with self.db.write() as session:
            slot = await session.scalar(select(Slot).where(Slot.provider == provider, Slot.number == number))
            if slot is None:
                return None
            old = getattr(slot, f"{what}_path")
            if what == "reference" and old and old in {r.get("path") for r in slot.more_references or []}:
                old = None  # the same file is still one of the slot's further references
            setattr(slot, f"{what}_path", relative)
            setattr(slot, f"{what}_sha256", digest)
            slot.revision += 1
            slot.updated_at = utcnow()
            unused = await _unused(session, old, keep=relative)
        self._forget(unused)
        return slot

    def _forget(self, relative: str | None) -> None:
        """Delete a file no slot uses any more — once no running job holds it (ContentHolds)."""
        if relative:
            self.media.holds.discard(relative)

    async def fetch_files(self, slot: Slot) -> None:
        """The slot's references and overlay on this node's disk: another node may have stored them
        (shared media bucket, issue 27); nothing to do without a bucket or when they are here."""
        for relative in [ref.get("path") for ref in self.references(slot)] + [slot.overlay_path]:
            await self.media.fetch(relative)

    def reference_path(self, slot: Slot, index: int = 0) -> Path | None:
        refs = self.references(slot)
        if not 0 <= index < len(refs):
            return None
        path = self.media.resolve(refs[index]["path"])
        return path if path.exists() else None

    # --- overlay (booth-links): stored by content like references, in a folder of its own ----------
    async def set_overlay(self, provider: str, number: int, data: bytes) -> Slot | None:
        """Validate (PNG/WebP with transparency) and keep the slot's overlay."""
        info = await self.imaging.check_overlay(data)
        digest = hashlib.sha256(data).hexdigest()
        try:
            kind = str(info["format"])
            path = await asyncio.to_thread(self.media.write_overlay, provider, number, data, kind, digest)
        except OSError as exc:
            raise StorageFailed(f"Could not store the overlay: {exc.strerror}.") from exc
        return await self._swap_file(provider, number, "overlay", self.media.relative(path), digest)

    async def remove_overlay(self, provider: str, number: int) -> Slot | None:
        return await self._swap_file(provider, number, "overlay", None, None)

    def overlay_file(self, slot: Slot) -> Path | None:
        if not slot.overlay_path:
            return None
        try:
            path = self.media.resolve(slot.overlay_path)
        except ValueError:
            return None
        return path if path.exists() else None

    def problems(self, slot: Slot) -> list[str]:
        """What stops this slot from working, in operator words (empty when it is ready)."""
        problems = []
        if slot.kind in KINDS_NEEDING_REFERENCE and not slot.reference_path:
            problems.append("reference_required")
        if slot.kind == Kind.prompt and not slot.prompt.strip() and slot.provider not in ("deepseek", "local"):
            problems.append("prompt_required")
        return problems

    def public(self, slot: Slot, base_url: str) -> dict[str, Any]:
        """The slot as the API shows it."""
        version = (slot.reference_sha256 or "")[:12]
        api = f"/api/slots/{slot.provider}/{slot.number}"
        return {
            "provider": slot.provider,
            "number": slot.number,
            "enabled": slot.enabled,
            "name": slot.name,
            "kind": slot.kind,
            "prompt": slot.prompt,
            "output_format": slot.output_format,
            "on_failure": slot.on_failure,
            "options": slot.options or {},
            "fallback": slot.fallback,
            "result_shape": slot.result_shape,
            "result_size": slot.result_size,
            "has_overlay": bool(slot.overlay_path),
            "overlay_url": f"{api}/overlay?v={(slot.overlay_sha256 or '')[:12]}" if slot.overlay_path else None,
            "placeholders": placeholders.names(slot.prompt),
            "moderation": slot.moderation,
            "share": ShareOptions.model_validate(slot.share or {}).model_dump(),
            "late_result_seconds": slot.late_result_seconds or 0,
            "has_reference": bool(slot.reference_path),
            "references": [
                {
                    "index": i,
                    "url": f"{api}/references/{i}?v={(ref['sha256'] or '')[:12]}",
                    "thumbnail_url": f"{api}/references/{i}/thumbnail?v={(ref['sha256'] or '')[:12]}",
                    "sha256": ref["sha256"],
                }
                for i, ref in enumerate(self.references(slot))
            ],
            "max_references": self.max_references(slot.provider),
            "reference_url": f"{api}/reference?v={version}" if slot.reference_path else None,
            "reference_thumbnail_url": f"{api}/reference/thumbnail?v={version}" if slot.reference_path else None,
            "upload_url": f"{base_url.rstrip('/')}/booth/{slot.provider}/{slot.number}",
            "revision": slot.revision,
            "updated_at": slot.updated_at.isoformat() if slot.updated_at else None,
            "problems": self.problems(slot),
        }


async def _unused(session: AsyncSession, relative: str | None, keep: str | None) -> str | None:
    """`relative` when no slot refers to it any more (files are shared by content between slots)."""
    if not relative or relative == keep:
        return None
    query = (
        select(func.count())
        .select_from(Slot)
        .where(or_(Slot.reference_path == relative, Slot.overlay_path == relative))
    )
    if await session.scalar(query):
        return None
    # Further references live in a JSON list: a handful of slots, read in Python (portable across databases).
    lists = (await session.execute(select(Slot.more_references).where(Slot.more_references.is_not(None)))).scalars()
    if any(relative == r.get("path") for refs in lists for r in refs or []):
        return None
    return relative


async def _to_thread_write(media: MediaStore, data: bytes, image_type: str) -> Path:
    try:
        return await asyncio.to_thread(media.store_content, "references", data, image_type)
    except OSError as exc:
        raise StorageFailed(f"Could not store the reference image: {exc.strerror or exc}.") from exc
