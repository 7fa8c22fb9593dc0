"""Galleries: one public page `/g/<token>` with the results of chosen slots (or, once the events work is
wired, of an event: `Gallery.event_id`), newest first, optionally behind a 4–8 digit PIN; the operator
hides single photos; the host downloads everything as one ZIP, streamed with bounded memory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from boothgate.records.zip_stream import CHUNK as ZIP_CHUNK
from boothgate.records.zip_stream import ZipStream
from boothgate.sharing.tokens import new_token
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Event, Gallery, Job

PIN_PATTERN = re.compile(r"^\d{4,8}$")
SLOT_PATTERN = re.compile(r"^[a-z]{2,32}/\d{1,2}$")
PIN_ROUNDS = 200_000
MAX_SLOTS = 100
PAGE_SIZE = 60


class GalleryInvalid(ValueError):
    pass


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, PIN_ROUNDS)
    return f"pbkdf2${PIN_ROUNDS}${salt.hex()}${digest.hex()}"


def check_pin(stored: str | None, pin: str) -> bool:
    """Whether `pin` opens a gallery whose PIN hash is `stored` (constant time; slow on purpose)."""
    if not stored:
        return True
    try:
        _, rounds, salt, digest = stored.split("$")
        given = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(given.hex(), digest)


def pin_cookie_value(gallery: Gallery) -> str:
    """What the gallery's cookie holds after the right PIN: bound to this gallery's PIN hash."""
    return hashlib.sha256(f"{gallery.token}:{gallery.pin_hash}".encode()).hexdigest()[:32]


def pin_cookie_opens(gallery: Gallery, cookie: str | None) -> bool:
    """Whether the visitor's cookie is the one the right PIN set (constant time, like every secret check)."""
    return not gallery.pin_hash or (
        cookie is not None
        and hmac.compare_digest(cookie.encode("utf-8", "replace"), pin_cookie_value(gallery).encode())
    )


def clean_slots(slots: list[str]) -> list[str]:
    out = []
    for slot in slots[:MAX_SLOTS]:
        text = str(slot).strip().lower()
        if not SLOT_PATTERN.match(text):
            raise GalleryInvalid(f"A slot is written as provider/number, e.g. gemini/1 (got {slot!r}).")
        if text not in out:
            out.append(text)
    return out


@dataclass
class GalleryPhoto:
    job_id: str
    created_at: datetime
    path: Path
    mime: str


class Galleries:
    def __init__(self, db: Database, media: MediaStore) -> None:
        self.db, self.media = db, media

    # --- the operator's side ------------------------------------------------------------------
    async def create(self, name: str, slots: list[str], pin: str | None) -> Gallery:
        if pin and not PIN_PATTERN.match(pin):
            raise GalleryInvalid("The PIN is 4 to 8 digits.")
        gallery = Gallery(
            token=new_token(),
            name=name.strip()[:200],
            slots=clean_slots(slots),
            pin_hash=hash_pin(pin) if pin else None,
            enabled=True,
        )
        async with self.db.write() as session:
            session.add(gallery)
        return gallery

    async def update(self, gallery_id: int, values: dict[str, Any]) -> Gallery | None:
        if "pin" in values and values["pin"] and not PIN_PATTERN.match(str(values["pin"])):
            raise GalleryInvalid("The PIN is 4 to 8 digits.")
        async with self.db.write() as session:
            gallery = await session.get(Gallery, gallery_id)
            if gallery is None:
                return None
            if "name" in values and values["name"] is not None:
                gallery.name = str(values["name"]).strip()[:200]
            if "slots" in values and values["slots"] is not None:
                gallery.slots = clean_slots(list(values["slots"]))
            if "enabled" in values and values["enabled"] is not None:
                gallery.enabled = bool(values["enabled"])
            if "pin" in values:
                gallery.pin_hash = hash_pin(str(values["pin"])) if values["pin"] else None
        return gallery

    async def delete(self, gallery_id: int) -> bool:
        async with self.db.write() as session:
            gallery = await session.get(Gallery, gallery_id)
            if gallery is None:
                return False
            await session.delete(gallery)
        return True

    async def all(self) -> list[Gallery]:
        async with self.db.read() as session:
            return list((await session.scalars(select(Gallery).order_by(Gallery.id))).all())

    async def get(self, gallery_id: int) -> Gallery | None:
        async with self.db.read() as session:
            return await session.get(Gallery, gallery_id)

    async def by_token(self, token: str) -> Gallery | None:
        """The gallery of this token; an event's gallery (its `gallery_token`) is made on its first visit."""
        async with self.db.read() as session:
            gallery = await session.scalar(select(Gallery).where(Gallery.token == token))
            event = None
            if gallery is None:
                event = await session.scalar(
                    select(Event).where(Event.gallery_token == token, Event.deleted_at.is_(None))
                )
        if gallery is None and event is not None:
            gallery = await self.for_event(event)
        return gallery if gallery is not None and gallery.enabled else None

    async def for_event(self, event: Event) -> Gallery:
        """The event's gallery row (its token is the event's `gallery_token`), made when first asked for:
        by the guest's first visit or by the operator opening it on the Events page to set a PIN."""
        async with self.db.read() as session:
            found = await session.scalar(select(Gallery).where(Gallery.token == event.gallery_token))
        if found is not None:
            return found
        try:
            async with self.db.write() as session:
                gallery = Gallery(token=event.gallery_token, name=event.name, slots=[], event_id=event.id)
                session.add(gallery)
            return gallery
        except IntegrityError:  # another request made it first
            async with self.db.read() as session:
                made = await session.scalar(select(Gallery).where(Gallery.token == event.gallery_token))
            assert made is not None
            return made

    async def hide(self, job_id: str, hidden: bool) -> bool:
        async with self.db.write() as session:
            job = await session.get(Job, job_id)
            if job is None:
                return False
            job.gallery_hidden = hidden
        return True

    # --- the public side ----------------------------------------------------------------------
    def _where(self, gallery: Gallery, retention_days: int) -> Any:
        pairs = []
        for slot in gallery.slots or []:
            provider, _, number = str(slot).partition("/")
            pairs.append(and_(Job.provider == provider, Job.slot_number == int(number)))
        since = datetime.now(UTC) - timedelta(days=retention_days)
        if gallery.event_id is not None:  # an event's gallery: the photos of that event, whatever the slots
            pairs = [Job.event_id == gallery.event_id]
        return and_(
            or_(*pairs) if pairs else Job.id == "",
            Job.source == "booth",
            Job.deleted_at.is_(None),
            or_(Job.gallery_hidden.is_(None), Job.gallery_hidden.is_(False)),
            Job.created_at >= since,
            or_(and_(Job.status == "succeeded", Job.result_path.is_not(None)), Job.late_result_path.is_not(None)),
        )

    async def photos(self, gallery: Gallery, retention_days: int, limit: int = PAGE_SIZE) -> list[GalleryPhoto]:
        query = select(Job).where(self._where(gallery, retention_days)).order_by(Job.created_at.desc()).limit(limit)
        async with self.db.read() as session:
            jobs = list((await session.scalars(query)).all())
        return [photo for job in jobs if (photo := self._photo(job)) is not None]

    async def photo(self, gallery: Gallery, job_id: str, retention_days: int) -> GalleryPhoto | None:
        query = select(Job).where(self._where(gallery, retention_days), Job.id == job_id)
        async with self.db.read() as session:
            job = await session.scalar(query)
        if job is None:
            return None
        for relative in (job.late_result_path, job.result_path):
            await self.media.fetch(relative)  # another node's result (shared bucket, issue 27)
        return self._photo(job)

    def _photo(self, job: Job) -> GalleryPhoto | None:
        delivered = (job.late or {}).get("status") == "delivered"
        relative = job.late_result_path if delivered and job.late_result_path else job.result_path
        if not relative:
            return None
        try:
            path = self.media.resolve(relative)
        except ValueError:
            return None
        mime = "image/png" if path.suffix == ".png" else "image/webp" if path.suffix == ".webp" else "image/jpeg"
        return GalleryPhoto(job.id, job.created_at, path, mime)

    async def all_photos(self, gallery: Gallery, retention_days: int, limit: int = 10_000) -> list[GalleryPhoto]:
        return await self.photos(gallery, retention_days, limit)


def zip_stream(photos: list[GalleryPhoto]) -> Iterator[bytes]:
    """The photos as one ZIP, produced piece by piece (records/zip_stream.py): never more than a chunk or
    so in memory. A file gone meanwhile (retention, a guest's deletion) is skipped."""
    out = ZipStream()
    for number, photo in enumerate(photos, 1):
        name = f"{number:04d}-{photo.created_at:%Y%m%d-%H%M%S}{photo.path.suffix}"
        try:
            source = photo.path.open("rb")
        except OSError:
            continue
        with source, out.open(name, photo.created_at.timetuple()[:6], os.fstat(source.fileno()).st_size) as entry:
            while chunk := source.read(ZIP_CHUNK):
                entry.write(chunk)
                if piece := out.take():
                    yield piece
    yield out.close()
