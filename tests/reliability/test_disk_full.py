"""A full disk: the booth gets an error (or its own photo back), and the original is never lost.

The disk is filled at the operating-system boundary: writes of the chosen files raise
OSError(ENOSPC) exactly as a full filesystem does; renames (no new blocks) still work, as they do on
a real full disk.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from boothgate.storage import media as media_module
from tests.conftest import Booth, make_jpeg


def _enospc(*_: Any, **__: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


def _fill(monkeypatch: pytest.MonkeyPatch, *folders: str) -> None:
    """Atomic writes (results, sidecars, references) into these data folders fail with ENOSPC."""
    real = media_module._write_atomic

    def write(target: Path, data: bytes) -> None:
        if any(part in folders for part in target.parts):
            _enospc()
        real(target, data)

    monkeypatch.setattr(media_module, "_write_atomic", write)


async def _job(booth: Booth, job_id: str) -> dict[str, Any]:
    async with booth.api() as client:
        response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200
    job: dict[str, Any] = response.json()
    return job


async def test_no_space_for_the_result_answers_507_and_keeps_the_original(
    booth: Booth, monkeypatch: pytest.MonkeyPatch
) -> None:
    await booth.configure("gemini", 1, prompt="x")
    _fill(monkeypatch, "results")
    photo = make_jpeg(120, 90, seed=1)
    answer = await booth.post("gemini", 1, photo, fields={"id": "full-disk-1"})
    assert answer.status == 507 and answer.json()["error"] == "storage_failed"
    job_id = str(answer.json()["job_id"])
    trash = {p.name: p for p in booth.trash_files()}
    assert trash[f"{job_id}.jpg"].read_bytes() == photo
    assert json.loads(trash[f"{job_id}.json"].read_text())["metadata"]["id"] == "full-disk-1"
    job = await _job(booth, job_id)
    assert (job["status"], job["error"], job["in_trash"]) == ("failed", "storage_failed", True)
    assert not list((booth.settings.data_dir / "results").rglob("*.*")), "no half-written result"

    monkeypatch.undo()  # space freed: the server carries on
    again = await booth.post("gemini", 1, make_jpeg(120, 90, seed=2))
    assert again.status == 200


async def test_no_space_with_on_failure_original_answers_the_guest_photo(
    booth: Booth, monkeypatch: pytest.MonkeyPatch
) -> None:
    await booth.configure("gemini", 2, prompt="x", on_failure="original")
    _fill(monkeypatch, "results")
    photo = make_jpeg(120, 90, seed=3)
    answer = await booth.post("gemini", 2, photo)
    assert (answer.status, answer.body) == (200, photo)
    assert answer.headers["x-boothgate-fallback"] == "storage_failed"
    assert any(p.read_bytes() == photo for p in booth.trash_files() if p.suffix == ".jpg")


async def test_no_space_even_for_the_sidecar_still_keeps_the_original(
    booth: Booth, monkeypatch: pytest.MonkeyPatch
) -> None:
    await booth.configure("gemini", 3, prompt="x")
    _fill(monkeypatch, "results", "trash")
    photo = make_jpeg(120, 90, seed=4)
    answer = await booth.post("gemini", 3, photo)
    assert answer.status == 507
    job = await _job(booth, str(answer.json()["job_id"]))
    assert job["in_trash"], "the database must say where the original went"
    async with booth.api() as client:
        kept = await client.get(job["photo_url"])
    assert kept.status_code == 200 and kept.content == photo


async def test_no_space_while_receiving_answers_507(booth: Booth, monkeypatch: pytest.MonkeyPatch) -> None:
    await booth.configure("gemini", 4, prompt="x")
    real_open = Path.open

    def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, mode, *args, **kwargs)
        if "incoming" in self.parts and "w" in mode:
            handle.write = _enospc  # the first block of the photo does not fit
        return handle

    monkeypatch.setattr(Path, "open", open_)
    answer = await booth.post("gemini", 4, make_jpeg(120, 90, seed=5))
    assert answer.status == 507 and answer.json()["error"] == "storage_failed"
    monkeypatch.undo()
    assert not list((booth.settings.data_dir / "incoming").iterdir()), "nothing left half-received"
    assert (await booth.post("gemini", 4, make_jpeg(120, 90, seed=6))).status == 200
