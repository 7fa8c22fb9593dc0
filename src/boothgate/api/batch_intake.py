"""A batch's intake (api/batches.py): the photos sent — files, or one ZIP of them — checked before
anything is written, and stored under the batch's folder.

The number of entries, each entry's size, the total, the compression ratio (a ZIP bomb), unsafe names
(absolute, `..`, drive letters) and archives inside the archive all answer 422 with nothing left on disk.
Declared sizes are not trusted: extraction counts the bytes it really gets and stops (deleting what it
wrote) when an entry grows past what it declared.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from boothgate.api.live import ApiError
from boothgate.imaging.images import sniff

IMAGE_SUFFIX = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
ARCHIVE_SUFFIXES = (".zip", ".7z", ".rar", ".tar", ".gz", ".tgz", ".bz2", ".xz")


@dataclass(frozen=True)
class BatchLimits:
    max_files: int = 200
    max_entry_bytes: int = 30 * 1024 * 1024
    max_total_bytes: int = 500 * 1024 * 1024
    max_ratio: float = 50.0  # uncompressed / compressed, per ZIP entry (JPEGs hardly compress: ~1.0)
    concurrency: int = 2


@dataclass
class Incoming:
    """One photo of a batch as sent: its name and a readable source (an upload's spooled file)."""

    name: str
    source: IO[bytes]


def safe_name(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    cleaned = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")[:120]
    return cleaned or "photo"


def _unsafe(name: str) -> bool:
    text = name.replace("\\", "/")
    parts = PurePosixPath(text).parts
    return text.startswith("/") or bool(re.match(r"^[A-Za-z]:", text)) or ".." in parts or "\x00" in text


def check_zip(archive: zipfile.ZipFile, limits: BatchLimits) -> list[zipfile.ZipInfo]:
    """The photo entries of an archive, or ApiError 422 — from the central directory alone (nothing read)."""
    entries: list[zipfile.ZipInfo] = []
    total = 0
    for info in archive.infolist():
        name = info.filename
        if _unsafe(name):
            raise ApiError(422, "zip_unsafe_path", f"The archive has an unsafe entry name: {name[:80]!r}.")
        if info.is_dir() or name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("."):
            continue
        if name.lower().endswith(ARCHIVE_SUFFIXES):
            raise ApiError(422, "zip_nested", f"Archives inside the archive are not accepted ({name[:80]!r}).")
        if info.flag_bits & 0x1:
            raise ApiError(422, "zip_encrypted", "Encrypted archives are not accepted.")
        if info.file_size > limits.max_entry_bytes:
            raise ApiError(
                422, "zip_entry_too_large", f"{name[:80]!r} is larger than {limits.max_entry_bytes:,} bytes."
            )
        if info.file_size > 1024 * 1024 and info.file_size > limits.max_ratio * max(1, info.compress_size):
            raise ApiError(
                422, "zip_ratio", f"{name[:80]!r} expands {info.file_size / max(1, info.compress_size):.0f}×: refused."
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ApiError(422, "zip_too_large", f"The archive expands to more than {limits.max_total_bytes:,} bytes.")
        entries.append(info)
        if len(entries) > limits.max_files:
            raise ApiError(422, "too_many_files", f"At most {limits.max_files} photos per batch.")
    if not entries:
        raise ApiError(422, "no_file", "The archive holds no photos.")
    return entries


def _copy_bounded(source: IO[bytes], target: Path, limit: int) -> int:
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(256 * 1024):
            written += len(chunk)
            if written > limit:
                raise ApiError(422, "zip_entry_too_large", "An entry is larger than it declared or than allowed.")
            out.write(chunk)
    return written


def store_inputs(folder: Path, incoming: list[Incoming], limits: BatchLimits) -> list[tuple[str, Path]]:
    """Write the batch's photos (files, or the entries of one ZIP) to `folder`. Runs in a thread.
    On any refusal, `folder` is removed: nothing is left on disk."""
    try:
        return _store(folder, incoming, limits)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _store(folder: Path, incoming: list[Incoming], limits: BatchLimits) -> list[tuple[str, Path]]:
    if not incoming:
        raise ApiError(422, "no_file", "Send the photos in the form field 'files' (or one ZIP).")
    zipped = len(incoming) == 1 and zipfile.is_zipfile(incoming[0].source)
    incoming[0].source.seek(0)
    stored: list[tuple[str, Path]] = []
    if zipped:
        try:
            archive = zipfile.ZipFile(incoming[0].source)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ApiError(422, "bad_zip", f"The archive cannot be read: {exc}.") from None
        with archive:
            entries = check_zip(archive, limits)  # every check before the first write
            folder.mkdir(parents=True, exist_ok=True)
            total = 0
            for position, info in enumerate(entries):
                target = folder / f"{position:05d}.in"
                try:
                    with archive.open(info) as source:
                        total += _copy_bounded(source, target, min(info.file_size, limits.max_entry_bytes))
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise ApiError(422, "bad_zip", f"An entry cannot be read: {exc}.") from None
                if total > limits.max_total_bytes:
                    raise ApiError(422, "zip_too_large", "The archive expands to more than allowed.")
                stored.append((safe_name(info.filename), target))
        return stored
    if len(incoming) > limits.max_files:
        raise ApiError(422, "too_many_files", f"At most {limits.max_files} photos per batch.")
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for position, item in enumerate(incoming):
        target = folder / f"{position:05d}.in"
        total += _copy_bounded(item.source, target, limits.max_entry_bytes)
        if total > limits.max_total_bytes:
            raise ApiError(422, "too_large", f"The batch is larger than {limits.max_total_bytes:,} bytes.")
        stored.append((safe_name(item.name), target))
    return stored


def unique_names(names: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        key = name.lower()
        if key in seen:
            seen[key] += 1
            stem, dot, ext = name.rpartition(".")
            name = f"{stem}-{seen[key]}.{ext}" if dot else f"{name}-{seen[key]}"
        else:
            seen[key] = 0
        out.append(name)
    return out


def photo_suffix(head: bytes) -> str:
    return IMAGE_SUFFIX.get(sniff(head) or "", ".bin")
