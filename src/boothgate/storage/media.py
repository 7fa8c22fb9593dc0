"""The media folders under the data dir: photos/, results/, references/, trash/, incoming/.

Paths stored in the database are relative to the data dir; `resolve()` refuses anything that would
leave it, so a path from the database or a request can never reach outside.

Operator images (references; overlays can use the same mechanism) are stored *by content*
(`store_content`: the file is named after its SHA-256), and a running job *holds* the files it was
admitted with (`ContentHolds`): replacing a slot's reference while a photo is in flight never takes the
file from under that job — deletion waits until the last holder lets go (issue 14).

With a bucket (`BOOTHGATE_MEDIA_URL=s3://…`, storage/objects.py, issue 27) the folders are this node's
working copy: every write is also put in the bucket under the same relative key before it returns, a
delete removes the object too, and `fetch()` brings a file another node wrote. The original must reach
the bucket before its provider is called (`publish`, strict: the booth gets its slot's on_failure answer
otherwise); a result, late result or trashed original that could not reach it stays here, is answered
with, and is put there later (`catch_up`) — a booth is never failed for a copy. Per-node files stay
local only: incoming/ (partial uploads), the journal, early-decode files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boothgate import errors
from boothgate.imaging.images import sniff
from boothgate.storage.objects import Bucket, BucketUnavailable

log = logging.getLogger("boothgate.media")

EXT = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "jpeg": "jpg",
    "png": "png",
    "webp": "webp",
}


class ContentHolds:
    """Files (relative paths) that running jobs hold. `discard` deletes a file at once when nobody holds
    it, otherwise when the last holder calls `release`. Used from the event loop and from threads."""

    def __init__(self, media: MediaStore) -> None:
        self.media = media
        self._holds: Counter[str] = Counter()
        self._doomed: set[str] = set()
        self._lock = threading.Lock()

    def hold(self, relative: str) -> None:
        with self._lock:
            self._holds[relative] += 1

    def release(self, relative: str) -> None:
        with self._lock:
            self._holds[relative] -= 1
            if self._holds[relative] > 0:
                return
            del self._holds[relative]
            doomed = relative in self._doomed
            self._doomed.discard(relative)
        if doomed:
            self.media.delete(relative)

    def discard(self, relative: str) -> None:
        """Delete the file now, or when the last job holding it has finished."""
        with self._lock:
            if self._holds[relative] > 0:
                self._doomed.add(relative)
                return
            self._holds.pop(relative, None)
        self.media.delete(relative)

    def held(self, relative: str) -> int:
        with self._lock:
            return self._holds.get(relative, 0)


# The list of files written here that have not reached the bucket yet (relative paths, one a line).
UNSHARED_NAME = "media-unshared.txt"
CATCH_UP_SECONDS = 30.0


class MediaStore:
    def __init__(self, data_dir: Path, bucket: Bucket | None = None) -> None:
        self.root = data_dir.resolve()
        for name in ("photos", "results", "references", "trash", "incoming"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.holds = ContentHolds(self)
        # Bytes moved or written into trash/ since start; the trash budget reads it (records/trash.py).
        self.trash_bytes_added = 0
        self.bucket = bucket
        # Bucket deletes leave the caller at once (holds are released on the event loop): one thread does them.
        self._deletes = ThreadPoolExecutor(1, thread_name_prefix="bucket-delete") if bucket else None
        self._unshared_lock = threading.Lock()

    # --- the bucket (issue 27) ----------------------------------------------------------------
    def share(self, path: Path, strict: bool = True) -> None:
        """Put a file just written here into the bucket (worker threads only). Not strict: a bucket that
        cannot take it now leaves it on the catch-up list instead of failing the write."""
        if self.bucket is None:
            return
        relative = self.relative(path)
        try:
            self.bucket.put_file(relative, path)
        except BucketUnavailable:
            if strict:
                raise
            log.warning("media %s kept here only for now: the bucket did not take it", relative)
            self._remember_unshared(relative)

    async def publish(self, relative: str) -> None:
        """The original in the bucket before its provider is called (a node that dies then loses nothing);
        a bucket that cannot take it in time is the booth's storage failure (its slot's on_failure)."""
        if self.bucket is None:
            return
        try:
            await self.bucket.aput_file(relative, self.resolve(relative))
        except BucketUnavailable as exc:
            raise errors.StorageUnavailable(f"The photo could not be stored in the media bucket: {exc}.") from None

    async def fetch(self, relative: str | None) -> None:
        """Bring a file this node lacks from the bucket (another node wrote it); quietly nothing when the
        bucket has none or cannot answer — the caller finds the file missing, as without a bucket."""
        if self.bucket is None or not relative:
            return
        try:
            path = self.resolve(relative)
            if not path.exists():
                await self.bucket.aget_to(relative, path)
        except (ValueError, OSError):
            log.warning("media %s: not fetched from the bucket", relative, exc_info=True)

    def _remember_unshared(self, relative: str) -> None:
        with self._unshared_lock, (self.root / UNSHARED_NAME).open("a") as fh:
            fh.write(relative + "\n")

    def catch_up(self) -> int:
        """Put what could not reach the bucket earlier (worker thread); how many are still waiting."""
        listing = self.root / UNSHARED_NAME
        if self.bucket is None or not listing.exists():
            return 0
        with self._unshared_lock:
            waiting = list(dict.fromkeys(listing.read_text().split()))
            listing.unlink()
        left = []
        for relative in waiting:
            path = self.resolve(relative)
            if not path.exists():
                continue  # deleted meanwhile (retention, a guest's delete)
            try:
                self.bucket.put_file(relative, path)
            except BucketUnavailable:
                left.append(relative)
        for relative in left:
            self._remember_unshared(relative)
        return len(left)

    async def run_forever(self) -> None:
        while self.bucket is not None:
            await asyncio.sleep(CATCH_UP_SECONDS)
            try:
                await asyncio.to_thread(self.catch_up)
            except OSError:
                log.warning("media catch-up failed", exc_info=True)

    def forget_prefix(self, prefix: str) -> None:
        """The bucket's objects under `prefix` deleted in the background (retention's expired day folders)."""
        left = f"media {prefix}: expired here, still in the bucket"
        self._delete_later(lambda bucket: bucket.delete_prefix(prefix), left)

    def _delete_remote(self, relative: str) -> None:
        left = f"media {relative}: deleted here, still in the bucket"
        self._delete_later(lambda bucket: bucket.delete(relative), left)

    def _delete_later(self, delete: Callable[[Bucket], object], left: str) -> None:
        """A delete in the bucket on the one background thread (holds are released on the event loop)."""
        if self.bucket is None or self._deletes is None:
            return
        bucket = self.bucket

        def remove() -> None:
            try:
                delete(bucket)
            except (BucketUnavailable, FileNotFoundError):
                log.warning("%s", left)

        self._deletes.submit(remove)

    # --- paths ------------------------------------------------------------------------------
    def resolve(self, relative: str) -> Path:
        """An absolute path inside the data dir, or ValueError."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("path outside the data dir")
        return path

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def incoming_path(self, job_id: str) -> Path:
        return self.root / "incoming" / f"{job_id}.part"

    def _dated(self, folder: str, name: str, when: datetime | None = None) -> Path:
        day = (when or datetime.now(UTC)).strftime("%Y-%m-%d")
        directory = self.root / folder / day
        directory.mkdir(parents=True, exist_ok=True)
        return directory / name

    # --- writing ----------------------------------------------------------------------------
    def keep_photo(self, incoming: Path, job_id: str, image_type: str) -> Path:
        """Move a received upload into photos/ (a rename: no copy, no second write). The bucket's copy is
        `publish`ed by the spine, so a bucket failure still leaves the original here for the trash."""
        target = self._dated("photos", f"{job_id}.{EXT.get(image_type, 'bin')}")
        os.replace(incoming, target)
        return target

    def write_result(self, job_id: str, data: bytes, mime: str) -> Path:
        target = self._dated("results", f"{job_id}.{EXT.get(mime, 'bin')}")
        _write_atomic(target, data)
        self.share(target, strict=False)  # the booth gets its result even while the bucket is away
        return target

    def write_late(self, job_id: str, data: bytes, mime: str) -> Path:
        """The late AI result of a job (the guest page's photo), beside the results, by day."""
        target = self._dated("late", f"{job_id}.{EXT.get(mime, 'bin')}")
        _write_atomic(target, data)
        self.share(target, strict=False)
        return target

    def store_content(self, folder: str, data: bytes, image_type: str) -> Path:
        """Keep `data` as `<folder>/<sha256>.<ext>`: the same bytes are one file, whoever uses them, and a
        file never changes once written (a replaced reference is a new file, the old one is discarded)."""
        digest = hashlib.sha256(data).hexdigest()
        directory = self.root / folder
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{digest}.{EXT.get(image_type, 'bin')}"
        if not target.exists():
            _write_atomic(target, data)
        self.share(target)  # the operator's upload fails (and can be repeated) if the bucket cannot take it
        return target

    def delete(self, relative: str) -> None:
        try:
            self.resolve(relative).unlink(missing_ok=True)
        except (ValueError, OSError):
            log.warning("could not delete %s", relative, exc_info=True)
            return
        self._delete_remote(relative)

    def write_overlay(self, provider: str, number: int, data: bytes, image_type: str, digest: str) -> Path:
        """A slot's overlay, named by its content (a new upload never overwrites a file a job is reading)."""
        directory = self.root / "overlays" / provider
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{number:02d}-{digest[:16]}.{EXT.get(image_type, 'bin')}"
        if not target.exists():
            _write_atomic(target, data)
        self.share(target)
        return target

    def to_trash(self, source: Path | None, job_id: str, sidecar: dict[str, Any]) -> Path:
        """Move the original into trash/YYYY-MM-DD/ with a JSON sidecar beside it.

        The sidecar is written even when there is no original (an upload that never completed), so
        every failure leaves a trace an operator can read.
        """
        suffix = trash_suffix(source)
        was = self._relative_or_none(source)
        target = self._dated("trash", f"{job_id}{suffix}")
        if source is not None and source.exists() and source.stat().st_size == 0:
            source.unlink(missing_ok=True)  # an upload whose first block never landed: nothing to keep
            source = None
        if source is not None and source.exists():
            try:
                os.replace(source, target)
            except OSError:
                shutil.copyfile(source, target)
        else:
            target = target.with_suffix("")
        kept = source is not None and target.exists()
        sidecar_path = target.with_suffix(".json")
        try:
            _write_atomic(sidecar_path, json.dumps(sidecar, ensure_ascii=False, indent=2, default=str).encode())
        except OSError:
            if not kept:
                raise
            # A full disk has no room for the sidecar, but the original (moved by a rename) is safe; the
            # database row still holds the reason.
            log.warning("job=%s original kept in trash without its sidecar (disk full?)", job_id, exc_info=True)
        self.trash_bytes_added += sum(p.stat().st_size for p in (target, sidecar_path) if p.exists())
        for written in (target, sidecar_path):
            if written.exists():
                self.share(written, strict=False)  # kept here in any case; the bucket gets it now or later
        if kept and was is not None and was.startswith("photos/"):
            self._delete_remote(was)  # the bucket's photos/ copy moved with it
        return target if kept else sidecar_path

    def _relative_or_none(self, path: Path | None) -> str | None:
        try:
            return self.relative(path) if path is not None else None
        except ValueError:
            return None


def trash_suffix(source: Path | None) -> str:
    """The trashed original's extension from its content (.jpg/.png/.webp); .bin only for non-images."""
    if source is None:
        return ".bin"
    try:
        with source.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return ".bin"
    kind = sniff(head)
    return f".{EXT[kind]}" if kind in EXT else ".bin"


def _write_atomic(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
