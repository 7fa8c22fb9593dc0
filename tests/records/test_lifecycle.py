"""First start, restart, crash recovery and retention."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from boothgate.operator import credentials as credentials_module
from boothgate.operator.credentials import verify_hash
from boothgate.records import retention
from boothgate.storage.models import Job
from tests.conftest import make_jpeg


async def test_first_start_generates_and_keeps_credentials(booth_factory, capsys) -> None:  # type: ignore[no-untyped-def]
    booth = booth_factory(admin_password=None, upload_password=None)
    printed = capsys.readouterr().out
    assert "Admin login:" in printed and "Upload password:" in printed
    admin_password = printed.split("Admin login:")[1].split("/")[1].split()[0]
    upload_password = printed.split("Upload password:")[1].split()[0]
    async with httpx.AsyncClient(base_url=booth.url, auth=("admin", admin_password)) as client:
        stats = (await client.get("/api/stats")).json()
    assert stats["upload_password"] == upload_password
    db = booth.settings.data_dir / "boothgate.db"
    raw = b"".join(p.read_bytes() for p in db.parent.glob("boothgate.db*"))
    assert admin_password.encode() not in raw, "the admin password is stored hashed"
    stored_hash = booth.services.credentials._admin_hash
    assert stored_hash.startswith("scrypt$") and verify_hash(admin_password, stored_hash)

    again = booth_factory(admin_password=None, upload_password=None)  # same data dir: a restart
    assert "Admin login:" not in capsys.readouterr().out, "printed once, on the first start only"
    async with httpx.AsyncClient(base_url=again.url, auth=("admin", admin_password)) as client:
        assert (await client.get("/api/stats")).json()["upload_password"] == upload_password


async def test_the_stored_admin_password_is_checked_off_the_event_loop(booth_factory, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """scrypt costs ~50 ms of CPU: on the event loop every sign-in (and every wrong password) would hold up
    every booth that long. It runs in a thread, and a right password is checked once."""
    booth = booth_factory(admin_password=None, upload_password=None)
    admin_password = capsys.readouterr().out.split("Admin login:")[1].split("/")[1].split()[0]
    on_loop: list[bool] = []

    def recording(password: str, stored: str) -> bool:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)  # called from the server's event loop
        except RuntimeError:
            on_loop.append(False)  # from a thread with no loop
        return verify_hash(password, stored)

    monkeypatch.setattr(credentials_module, "verify_hash", recording)
    async with httpx.AsyncClient(base_url=booth.url, auth=("admin", "wrong-" + admin_password)) as client:
        assert (await client.get("/api/stats")).status_code == 401
    async with httpx.AsyncClient(base_url=booth.url, auth=("admin", admin_password)) as client:
        assert (await client.get("/api/stats")).status_code == 200
        assert (await client.get("/api/stats")).status_code == 200
    assert on_loop == [False, False], (
        "the wrong one and the first right one, both off the loop; the second is remembered"
    )


async def test_interrupted_jobs_are_failed_and_trashed_on_start(booth_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    booth = booth_factory()
    services = booth.services
    photo = make_jpeg(seed=3)
    photo_path = services.media.root / "photos" / "2026-11-21" / "abc.jpg"
    photo_path.parent.mkdir(parents=True, exist_ok=True)
    photo_path.write_bytes(photo)
    await services.jobs.add(
        Job(
            id="abc",
            provider="gemini",
            slot_number=1,
            status="running",
            photo_path="photos/2026-11-21/abc.jpg",
            timings={},
            meta={"id": "X"},
            provider_notes={},
        )
    )
    half_upload = services.media.incoming_path("def")
    half_upload.write_bytes(photo[:1000])

    restarted = booth_factory()  # same data dir
    job = await restarted.services.jobs.get("abc")
    assert job.status == "failed" and job.error_code == "interrupted"
    assert job.photo_path is None and job.trash_path
    trashed = restarted.services.media.resolve(job.trash_path)
    assert trashed.read_bytes() == photo
    assert json.loads(trashed.with_suffix(".json").read_text())["error"] == "interrupted"
    assert not half_upload.exists()
    assert any(p.name.startswith("def") for p in restarted.trash_files())
    async with restarted.api() as client:
        assert (await client.get("/api/slots")).status_code == 200


async def test_retention_deletes_old_day_folders_and_forgets_paths(booth_factory) -> None:  # type: ignore[no-untyped-def]
    booth = booth_factory(retention_days=30, trash_retention_days=60)
    services = booth.services
    today = date(2026, 11, 21)
    old_day = (today - timedelta(days=31)).isoformat()
    recent_day = (today - timedelta(days=29)).isoformat()
    old_trash_day = (today - timedelta(days=61)).isoformat()
    for folder, day in (("photos", old_day), ("photos", recent_day), ("results", old_day), ("trash", old_day),
                        ("trash", old_trash_day)):  # fmt: skip
        path = services.media.root / folder / day / "j.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    await services.jobs.add(
        Job(
            id="old",
            provider="gemini",
            slot_number=1,
            status="succeeded",
            photo_path=f"photos/{old_day}/j.jpg",
            result_path=f"results/{old_day}/j.jpg",
            created_at=datetime.now(UTC),
            timings={},
            meta={},
            provider_notes={},
        )
    )
    # Kept here long enough (issue 31: a folder's name alone never deletes it; see test_clock_retention.py).
    ledger = retention.Ledger(services.media.root / retention.LEDGER_NAME)
    ledger.kept = {f"{folder}/{day}": 90 * retention.DAY for folder in ("photos", "results", "trash")
                   for day in (old_day, recent_day, old_trash_day)}  # fmt: skip
    ledger._last_mono = time.monotonic()
    ledger._run_wall = time.time()
    removed = await retention.sweep(services.settings, services.media, services.db, today=today, ledger=ledger)
    assert removed == 3
    assert not (services.media.root / "photos" / old_day).exists()
    assert (services.media.root / "photos" / recent_day).exists()
    assert (services.media.root / "trash" / old_day).exists(), "trash has its own, longer retention"
    assert not (services.media.root / "trash" / old_trash_day).exists()
    job = await services.jobs.get("old")
    assert job.photo_path is None and job.result_path is None


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_bad_settings_are_refused(value: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from boothgate.settings import get_settings

    monkeypatch.setenv("BOOTHGATE_DEADLINE_SECONDS", value)
    with pytest.raises(ValidationError):
        get_settings()
