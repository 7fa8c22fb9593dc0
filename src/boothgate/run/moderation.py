"""Moderation: the offline NSFW check before the AI (the photo) and after it (the result), and the mask.

The slot's `moderation` field says what to do (`ModerationOptions`). A photo that fails the before-check
is never sent to a provider; a result that fails the after-check is kept for the operator and the booth
gets the mask image instead — or, when the slot says `refuse`, `422 photo_refused`.

The model runs on one thread of its own: one copy of the network in memory (about 100 MB), onnxruntime
releases the GIL while it computes, and each check is small (a 224 px look at an image of a few
megapixels at most — the prepared photo, or a result already admitted under the pixel cap).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from boothgate import errors
from boothgate.imaging import mask, nsfw
from boothgate.imaging.images import sniff
from boothgate.imaging.pool import Imaging
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Slot
from boothgate.storage.objects import BucketUnavailable

log = logging.getLogger("boothgate.moderation")

Stage = Literal["before", "after"]
MASK_FOLDER = "masks"
# A result larger than this (from its header) is made small in an image worker before the after-check
# scores it; a smaller one (a shaped result is at most ~7 MP) is scored here, with JPEG's scaled decode.
AFTER_CHECK_IN_PLACE_PIXELS = 12_000_000
AFTER_CHECK_SIDE = 448
MASK_TYPES = ("jpeg", "png", "webp")


def _pixels(data: bytes) -> int:
    """Width × height from the header (no decode); 0 when unreadable (the scorer then says why)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.size[0]) * int(im.size[1])
    except Exception:
        return 0


class ModerationOptions(BaseModel):
    """A slot's moderation settings (slot field `moderation`); a slot without them uses the defaults."""

    model_config = ConfigDict(extra="forbid")

    before: bool = Field(False, description="Check the guest's photo before it goes to the AI.")
    after: bool = Field(True, description="Check the AI's result before the booth gets it.")
    threshold: float = Field(0.6, ge=0, le=1, description="NSFW score (0–1) from which an image is caught.")
    on_hit: Literal["mask", "refuse"] = Field(
        "mask", description="A caught photo or result: answer the mask image (200) or 422 photo_refused."
    )
    provider_refusal: Literal["error", "mask"] = Field(
        "error", description="When the AI provider itself refuses for safety: answer the error, or the mask."
    )


class PhotoHeld(errors.BoothError):
    """The photo failed the before-check: nothing was sent to a provider."""

    status, code = 422, "photo_refused"


class ResultHeld(errors.BoothError):
    """The AI's result failed the after-check: it is kept for the operator, never answered."""

    status, code = 422, "result_refused"


def options_for(slot: Slot) -> ModerationOptions:
    return ModerationOptions.model_validate(slot.moderation or {})


class Moderation:
    def __init__(
        self, root: Path, imaging: Imaging, long_side_pixels: int, quality: int, media: MediaStore | None = None
    ) -> None:
        # With a shared bucket (issue 27) masks live there too: an operator's upload on one node is the
        # mask every node answers with (read from the bucket when needed: a mask is replaced in place).
        self.media = media if media is not None and media.bucket is not None else None
        self.folder = root / MASK_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.imaging, self.long_side_pixels, self.quality = imaging, long_side_pixels, quality
        self.problem = nsfw.problem()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="nsfw")

    @property
    def available(self) -> bool:
        return self.problem is None

    def warm(self) -> None:
        """Load the model in the background at start-up (the first guest must not wait ~1 s for it)."""
        if self.available:
            self._thread.submit(_warm_quietly)

    # --- the checks ---------------------------------------------------------------------------
    async def check(
        self,
        stage: Stage,
        data: bytes,
        options: ModerationOptions,
        record: dict[str, Any],
        deadline: float | None = None,
    ) -> bool:
        """Score `data` when the slot checks this stage; record score and decision; True on a hit."""
        if not (options.before if stage == "before" else options.after):
            return False
        if not self.available:
            record[stage] = {"skipped": "engine unavailable"}
            return False
        loop = asyncio.get_running_loop()
        try:
            if stage == "after" and await asyncio.to_thread(_pixels, data) > AFTER_CHECK_IN_PLACE_PIXELS:
                # A result (as returned, or a transparent PNG) may be up to the pixel cap: it is made small
                # in an image worker, never decoded at full size in the server (issue 31, class 3).
                data = await self.imaging.small_copy(data, AFTER_CHECK_SIDE, deadline)
            score = await loop.run_in_executor(self._thread, nsfw.score, data)
        except errors.BoothError as exc:
            record[stage] = {"skipped": exc.message[:200]}
            return False
        except ValueError as exc:  # the bytes were admitted elsewhere; an unreadable one is not ours to judge
            record[stage] = {"skipped": str(exc)[:200]}
            return False
        hit = score >= options.threshold
        record[stage] = {"score": round(score, 4), "threshold": options.threshold, "hit": hit}
        return hit

    # --- the mask -----------------------------------------------------------------------------
    async def mask(self, slot: Slot | None, width: int, height: int, deadline: float | None) -> bytes:
        """The mask shaped like a `width`×`height` photo: the slot's own, else the global one, else built-in."""
        source = await asyncio.to_thread(self._mask_source, slot)
        return await self.imaging.workers.run(
            deadline, mask.build, width, height, self.long_side_pixels, source, self.quality
        )

    def _mask_source(self, slot: Slot | None) -> bytes | None:
        return self.read_first(([slot_mask_name(slot.provider, slot.number)] if slot else []) + ["global"])

    def read_first(self, names: list[str]) -> bytes | None:
        """The first of the named masks that exists (worker thread): from the shared bucket when there is
        one (another node may have replaced it), else — or when the bucket does not answer — from here."""
        for name in names:
            answered, data = self._from_bucket(name)
            if data is not None:
                return data
            if answered:
                continue  # the bucket has none by this name: removed on some node, gone here too
            path = self.find(name)
            if path is not None:
                try:
                    return path.read_bytes()
                except OSError:
                    continue
        return None

    def _from_bucket(self, name: str) -> tuple[bool, bytes | None]:
        """(whether the bucket answered, the mask's bytes from it)."""
        if self.media is None or self.media.bucket is None:
            return False, None
        for kind in MASK_TYPES:
            target = self.folder / f"{name}.{kind}"
            try:
                if self.media.bucket.get_to(f"{MASK_FOLDER}/{name}.{kind}", target):
                    return True, target.read_bytes()
            except (BucketUnavailable, OSError):
                return False, None  # the local copy serves
        for kind in MASK_TYPES:
            (self.folder / f"{name}.{kind}").unlink(missing_ok=True)
        return True, None

    def find(self, name: str) -> Path | None:
        for kind in MASK_TYPES:
            path = self.folder / f"{name}.{kind}"
            if path.is_file():
                return path
        return None

    def store(self, name: str, data: bytes) -> Path:
        """Keep an operator's mask (already validated as an image) under `name`, replacing the old one."""
        kind = sniff(data[:16])
        if kind not in MASK_TYPES:
            raise errors.UnsupportedImage("The mask must be a JPEG, PNG or WEBP image.")
        target = self.folder / f"{name}.{kind}"
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        if self.media is not None:
            self.media.share(target)  # worker thread; a bucket that cannot take it fails the upload
        for other in MASK_TYPES:
            if other != kind:
                self._delete(name, other)
        return target

    def _delete(self, name: str, kind: str) -> None:
        """The mask's copy of another type gone (worker thread): here, and from the bucket before the
        upload returns, so no node reads the old one next to the new."""
        (self.folder / f"{name}.{kind}").unlink(missing_ok=True)
        if self.media is not None and self.media.bucket is not None:
            try:
                self.media.bucket.delete(f"{MASK_FOLDER}/{name}.{kind}")
            except (BucketUnavailable, FileNotFoundError):
                log.warning("mask %s.%s: replaced here, the old one is still in the bucket", name, kind)

    def remove(self, name: str) -> bool:
        removed = False
        for kind in MASK_TYPES:
            path = self.folder / f"{name}.{kind}"
            if path.is_file():
                path.unlink()
                removed = True
            if self.media is not None:
                self.media.delete(f"{MASK_FOLDER}/{name}.{kind}")  # another node's upload goes too
        return removed

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


def slot_mask_name(provider: str, number: int) -> str:
    return f"slot-{provider}-{number:02d}"


def _warm_quietly() -> None:
    try:
        nsfw.warm()
    except Exception:  # the check reports its own problem when a job needs it
        log.warning("the NSFW model could not be loaded", exc_info=True)
