"""The numbers behind the overview list and the live view, from job rows in a real (SQLite) database:
today's count and the last result per slot, failures and fallbacks, answer times per provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from boothgate.records.live import BUCKET_MINUTES, live_view, slot_activity
from boothgate.storage.db import Database
from boothgate.storage.models import Job


async def add(
    sqlite_db: Database, number: int, minutes_ago: float, status: str = "succeeded", **fields: object
) -> dict[str, object]:
    values: dict[str, object] = {
        "id": f"job{number}x{minutes_ago}x{status}",
        "provider": "gemini",
        "slot_number": number,
        "source": "booth",
        "status": status,
        "created_at": datetime.now(UTC) - timedelta(minutes=minutes_ago),
        "total_seconds": 10.0,
        **fields,
    }
    async with sqlite_db.write() as session:
        session.add(Job(**values))
    return values


async def test_failures_fallbacks_and_answer_times_over_the_window(sqlite_db: Database) -> None:
    succeeded = [await add(sqlite_db, 1, 5, total_seconds=12.0), await add(sqlite_db, 1, 6, total_seconds=8.0)]
    await add(sqlite_db, 2, 7, "failed", total_seconds=3.0)
    await add(sqlite_db, 2, 8, "timed_out", total_seconds=48.0)
    fallback = await add(sqlite_db, 3, 9, served_by="local/3", fallback_reason="provider_error", total_seconds=20.0)
    succeeded.append(fallback)
    await add(sqlite_db, 3, 10, "rejected")
    await add(sqlite_db, 4, 2, source="try", result_path="x.jpg")  # the operator's Try it: not the event
    await add(sqlite_db, 5, 60 * 5)  # outside a 3-hour window
    await add(sqlite_db, 6, 20, provider="turbotext", total_seconds=30.0)

    view = await live_view(sqlite_db, ["gemini", "turbotext"], hours=3)

    assert view["counts"] == {
        "received": 7,
        "succeeded": 4,
        "failed": 1,
        "timed_out": 1,
        "rejected": 1,
        "fallbacks": 1,
    }
    assert view["providers"]["gemini"] == {"received": 6, "failed": 3, "fallbacks": 1}
    series = {s["provider"]: s["points"] for s in view["series"]}
    assert list(series) == ["gemini", "turbotext"]
    # succeeded answers only, averaged per bucket: failures do not drag the answer time down
    assert sum(p["count"] for p in series["gemini"]) == 3
    # the jobs' own times grouped by the 10-minute bucket (from the epoch, UTC) their creation falls in
    by_bucket: dict[int, list[float]] = {}
    for job in succeeded:
        stamp = job["created_at"].timestamp()  # type: ignore[attr-defined]
        by_bucket.setdefault(int(stamp // (BUCKET_MINUTES * 60)), []).append(job["total_seconds"])  # type: ignore[arg-type]
    expected = [round(sum(v) / len(v), 3) for _, v in sorted(by_bucket.items())]
    assert [p["avg_seconds"] for p in series["gemini"]] == expected
    assert series["turbotext"][0]["avg_seconds"] == 30.0
    assert view["bucket_minutes"] == BUCKET_MINUTES
    assert [job["slot"] for job in view["latest"]][:2] == [1, 1]
    assert all(job["source"] == "booth" for job in view["latest"])


async def test_slot_activity_counts_booth_photos_today_and_keeps_the_latest_job(sqlite_db: Database) -> None:
    # seconds ago, so "today" holds even just after midnight
    await add(sqlite_db, 7, 0.01, result_path="results/a.jpg")
    await add(sqlite_db, 7, 0.03)
    await add(sqlite_db, 7, 0.02, source="try")
    await add(sqlite_db, 8, 0.04, "failed")
    activity = await slot_activity(sqlite_db, "gemini")
    assert activity[7].today == 2, "Try it is not a guest's photo"
    assert activity[7].last is not None and activity[7].last["result_thumbnail_url"].endswith("/result/thumbnail")
    assert activity[8].last is not None and activity[8].last["status"] == "failed"
    assert 9 not in activity


async def test_the_job_list_pages_by_the_last_id_without_repeats_or_gaps(sqlite_db: Database, tmp_path: Path) -> None:
    from boothgate.records.jobs import JobStore
    from boothgate.storage.media import MediaStore

    same = datetime.now(UTC) - timedelta(minutes=1)
    for i in range(23):  # a few share one created_at: the id breaks the tie
        moment = same if i % 4 == 0 else datetime.now(UTC) - timedelta(minutes=i * 0.5)
        await add(sqlite_db, 1 + i % 3, i * 0.5, id=f"p{i:02d}", created_at=moment)
    store = JobStore(sqlite_db, MediaStore(tmp_path / "media"))
    seen: list[str] = []
    before = None
    while True:
        page = await store.find(limit=5, before=before)
        seen += [job.id for job in page]
        if len(page) < 5:
            break
        before = page[-1].id
    assert sorted(seen) == sorted(f"p{i:02d}" for i in range(23)) and len(seen) == len(set(seen))
    assert len(await store.find(limit=10_000)) == 23  # asking for more than PAGE_ROWS is not an error
