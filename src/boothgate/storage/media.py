"""The media folders under the data dir: photos/, results/, references/, trash/, incoming/.

Paths stored in the database are relative to the data dir; `resolve()` refuses anything that would
leave it, so a path from the database or a request can never reach outside.

Operator images (references; overlays can use the same mechanism) are stored *by content*
(`store_content`: the file is named after its SHA-256), and a running job *holds* the files it was
admitted with (`ContentHolds`): replacing a slot's reference while a photo is in flight never takes the
file from under that job — deletion waits until the last holder lets go (issue 14).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boothgate.imaging.images import sniff

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


class MediaStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir.resolve()
        for name in ("photos", "results", "references", "trash", "incoming"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.holds = ContentHolds(self)
        # Bytes moved or written into trash/ since start; the trash budget reads it (records/trash.py).
        self.trash_bytes_added = 0

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
        """Move a received upload into photos/ (a rename: no copy, no second write)."""
        target = self._dated("photos", f"{job_id}.{EXT.get(image_type, 'bin')}")
        os.replace(incoming, target)
        return target

    def write_result(self, job_id: str, data: bytes, mime: str) -> Path:
        target = self._dated("results", f"{job_id}.{EXT.get(mime, 'bin')}")
        _write_atomic(target, data)
        return target

    def write_late(self, job_id: str, data: bytes, mime: str) -> Path:
        """The late AI result of a job (the guest page's photo), beside the results, by day."""
        target = self._dated("late", f"{job_id}.{EXT.get(mime, 'bin')}")
        _write_atomic(target, data)
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
        return target

    def delete(self, relative: str) -> None:
        try:
            self.resolve(relative).unlink(missing_ok=True)
        except (ValueError, OSError):
            log.warning("could not delete %s", relative, exc_info=True)

    def write_overlay(self, provider: str, number: int, data: bytes, image_type: str, digest: str) -> Path:
        """A slot's overlay, named by its content (a new upload never overwrites a file a job is reading)."""
        directory = self.root / "overlays" / provider
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{number:02d}-{digest[:16]}.{EXT.get(image_type, 'bin')}"
        if not target.exists():
            _write_atomic(target, data)
        return target

    def to_trash(self, source: Path | None, job_id: str, sidecar: dict[str, Any]) -> Path:
        """Move the original into trash/YYYY-MM-DD/ with a JSON sidecar beside it.

        The sidecar is written even when there is no original (an upload that never completed), so
        every failure leaves a trace an operator can read.
        """
        suffix = trash_suffix(source)
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
        return target if kept else sidecar_path


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
