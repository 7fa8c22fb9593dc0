"""Everything a job uses is fixed when it is admitted (issue 14, part 4).

The race is made deterministic at the image worker's door: the photo's preparation waits until the
test has replaced (or removed) the slot's reference through the admin API, then goes on. The provider
must get the reference the job was admitted with — never none — and the old file is deleted only after
the job is over.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from boothgate.providers.base import ProviderRequest, ProviderResult
from tests.conftest import Booth, ScriptedProvider, make_jpeg, photo_array

BRIGHT = np.clip(photo_array(480, 360, seed=1).astype(np.int16) + 90, 0, 255).astype(np.uint8)
DARK = (BRIGHT // 4).astype(np.uint8)


def _jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=92)
    return buf.getvalue()


OLD, NEW = _jpeg(BRIGHT), _jpeg(DARK)


class ReferenceRecorder(ScriptedProvider):
    """Records the mean brightness of the reference each call carried (None: no reference)."""

    references: ClassVar[list[float | None]] = []

    async def run(self, request: ProviderRequest) -> ProviderResult:
        reference = request.reference
        if reference is None:
            self.references.append(None)
        else:
            with Image.open(io.BytesIO(reference.data)) as image:
                self.references.append(float(np.asarray(image.convert("L")).mean()))
        return await super().run(request)


def _pause_photo_preparation(booth: Booth) -> tuple[threading.Event, threading.Event]:
    """The next booth photo's preparation waits for `go`; `entered` says it is waiting."""
    imaging = booth.services.imaging
    real = imaging.prepare
    entered, go = threading.Event(), threading.Event()

    async def prepare(source: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(source, Path) and "photos" in source.parts:
            entered.set()
            await asyncio.to_thread(go.wait, 20)
        return await real(source, *args, **kwargs)

    imaging.prepare = prepare
    return entered, go


def _reference_files(booth: Booth) -> set[str]:
    return {p.name for p in (booth.settings.data_dir / "references").rglob("*") if p.is_file()}


async def _race(booth: Booth, change: Any) -> Any:
    entered, go = _pause_photo_preparation(booth)
    posting = asyncio.create_task(booth.post("gemini", 1, make_jpeg(320, 240, seed=50)))
    assert await asyncio.to_thread(entered.wait, 10), "the photo reached preparation"
    await change()
    go.set()
    return await posting


async def test_replacing_the_reference_during_preparation_uses_the_admitted_one(booth_factory: Any) -> None:
    ReferenceRecorder.references.clear()
    booth: Booth = booth_factory({"gemini": ReferenceRecorder})
    await booth.configure("gemini", 1, kind="face_swap", prompt="x")
    await booth.set_reference("gemini", 1, OLD)
    old_name = f"{hashlib.sha256(OLD).hexdigest()}.jpg"
    assert _reference_files(booth) == {old_name}

    async def replace() -> None:
        await booth.set_reference("gemini", 1, NEW)
        assert old_name in _reference_files(booth), "a held reference is not deleted while its job runs"

    answer = await _race(booth, replace)
    assert answer.status == 200, answer.body[:300]
    [seen] = ReferenceRecorder.references
    assert seen is not None, "a face swap never goes out without its reference"
    assert seen > 120, f"the job used the reference it was admitted with (brightness {seen:.0f})"
    assert _reference_files(booth) == {f"{hashlib.sha256(NEW).hexdigest()}.jpg"}, "the old file goes afterwards"

    again = await booth.post("gemini", 1, make_jpeg(320, 240, seed=51))
    assert again.status == 200 and ReferenceRecorder.references[-1] is not None
    assert ReferenceRecorder.references[-1] < 60, "the next photo uses the new reference"


async def test_removing_the_reference_during_preparation_still_sends_the_admitted_one(booth_factory: Any) -> None:
    ReferenceRecorder.references.clear()
    booth: Booth = booth_factory({"gemini": ReferenceRecorder})
    await booth.configure("gemini", 1, kind="background", prompt="x")
    await booth.set_reference("gemini", 1, OLD)

    async def remove() -> None:
        async with booth.api() as client:
            assert (await client.delete("/api/slots/gemini/1/reference")).status_code == 200

    answer = await _race(booth, remove)
    assert answer.status == 200
    assert ReferenceRecorder.references == [ReferenceRecorder.references[0]] and ReferenceRecorder.references[0]
    assert _reference_files(booth) == set(), "deleted once the job let go of it"
    refused = await booth.post("gemini", 1, make_jpeg(320, 240, seed=52))
    assert (refused.status, refused.json()["error"]) == (503, "slot_incomplete")


async def test_a_reference_shared_by_two_slots_survives_one_being_replaced(booth_factory: Any) -> None:
    booth: Booth = booth_factory({"gemini": ReferenceRecorder})
    for number in (1, 2):
        await booth.configure("gemini", number, kind="face_swap", prompt="x")
        await booth.set_reference("gemini", number, OLD)
    assert len(_reference_files(booth)) == 1, "the same bytes are stored once"
    await booth.set_reference("gemini", 1, NEW)
    assert len(_reference_files(booth)) == 2, "slot 2 still uses the old file"
    assert (await booth.post("gemini", 2, make_jpeg(320, 240, seed=53))).status == 200
