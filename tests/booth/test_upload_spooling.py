"""A big upload is written to disk in batches off the event loop: the stored photo is byte-identical."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from uvicorn.protocols.http.h11_impl import RequestResponseCycle

from boothgate.booth.multipart import (
    FAST_FLUSH_BYTES,
    FLUSH_BYTES,
    PENDING_BUDGET_BYTES,
    Limits,
    _batch,
    _Collector,
    read_upload,
)
from boothgate.booth.turns import Turn, Turns
from boothgate.cli.booth_client import BoothForm, build_multipart
from boothgate.errors import MalformedRequest, TooLarge
from boothgate.web.booth import BodyChunks
from tests.bad_inputs import MULTIPART, booth_form
from tests.conftest import Booth, make_jpeg
from tests.waits import eventually


async def pieces(body: bytes, size: int = 8192, pause: float | None = None) -> AsyncIterator[bytes]:
    """The body in `size`-byte chunks, each after `pause` seconds (None: all there at once)."""
    for start in range(0, len(body), size):
        if pause is not None:
            await asyncio.sleep(pause)
        yield body[start : start + size]


async def _started(turn: Turn) -> None:
    """Until the upload has parsed its first chunk."""
    async with asyncio.timeout(5):
        while not turn.started:  # noqa: ASYNC110  (a flag of the code under test, not an event of ours)
            await asyncio.sleep(0.005)


async def test_photo_larger_than_a_batch_is_stored_byte_for_byte(booth: Booth) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    photo = make_jpeg(3200, 2400, seed=3, quality=98)
    assert len(photo) > 3 * FAST_FLUSH_BYTES, "the photo must span several batched writes, even the largest"
    answer = await booth.post("gemini", 1, photo)
    assert answer.status == 200, answer.body[:200]
    job_id = answer.headers["x-job-id"]
    async with booth.api() as client:
        stored = (await client.get(f"/api/jobs/{job_id}/photo")).content
    assert hashlib.sha256(stored).digest() == hashlib.sha256(photo).digest()


async def test_the_duplicate_check_hashes_the_whole_photo(booth: Booth) -> None:
    """Two photos that differ only in their last byte are different photos; the same one twice is not."""
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    photo = make_jpeg(2000, 1500, seed=4, quality=98)
    first = await booth.post("gemini", 1, photo + b"A")
    other = await booth.post("gemini", 1, photo + b"B")
    again = await booth.post("gemini", 1, photo + b"A")
    assert first.status == other.status == again.status == 200
    assert "x-reused-from" not in other.headers
    assert again.headers.get("x-reused-from") == first.headers["x-job-id"]


async def test_uploads_parse_only_while_holding_a_turn(tmp_path: Path) -> None:
    """Arrived bytes are parsed only with a turn; while older uploads hold every lane, a younger one waits."""
    photo = make_jpeg(400, 300, seed=5)
    body, content_type = build_multipart(photo, BoothForm("pw"))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    turns = Turns(lanes=1)
    older = turns.turn(arrived=1.0)
    await older.take()  # an older upload is parsing
    limits = Limits(max_bytes=10_000_000, idle_timeout_seconds=5)
    reading = asyncio.create_task(read_upload(content_type, chunks(), tmp_path / "photo", limits, turns.turn(2.0)))
    await eventually(lambda: turns.crowded, "the younger upload to wait for its turn")  # started, and waiting
    assert not reading.done() and not (tmp_path / "photo").exists()
    older.give_back()
    upload = await asyncio.wait_for(reading, 5)
    assert (tmp_path / "photo").read_bytes() == photo and upload.fields["password"] == "pw"
    assert turns.busy == 0, "the lane is free again after the upload"


async def test_a_burst_finishes_arriving_oldest_first(tmp_path: Path) -> None:
    """Uploads whose bytes are all there (a burst over loopback) finish arriving in the order they came,
    not all at the end: the first photos can be prepared while the later ones arrive."""
    photo = make_jpeg(1200, 900, seed=7, quality=95)
    body, content_type = build_multipart(photo, BoothForm("pw"))
    turns = Turns(lanes=1)
    finished: list[int] = []

    async def one(n: int) -> None:
        limits = Limits(max_bytes=10_000_000, idle_timeout_seconds=5)
        # each chunk there at once, as over loopback (a pass of the loop between chunks)
        chunks = pieces(body, 16384, pause=0.0)
        await read_upload(content_type, chunks, tmp_path / f"photo{n}", limits, turns.turn(float(n)))
        finished.append(n)

    first = turns.turn(-1.0)
    await first.take()  # the lane is busy while they all come in, youngest first
    burst = asyncio.gather(*(one(n) for n in (4, 3, 2, 1, 0)))
    await asyncio.sleep(0.05)
    first.give_back()
    await asyncio.wait_for(burst, 20)
    assert finished == [0, 1, 2, 3, 4]


async def test_a_slow_upload_lends_its_turn_while_it_waits_for_the_network(tmp_path: Path) -> None:
    """The oldest upload trickles (a booth on a slow network); younger ones with all their bytes there are
    parsed meanwhile instead of waiting for it."""
    photo = make_jpeg(400, 300, seed=8)
    body, content_type = build_multipart(photo, BoothForm("pw"))
    turns = Turns(lanes=1)
    limits = Limits(max_bytes=10_000_000, idle_timeout_seconds=5)

    slow_turn = turns.turn(0.0)
    trickling = asyncio.create_task(
        read_upload(content_type, pieces(body, pause=0.1), tmp_path / "slow", limits, slow_turn)
    )
    await _started(slow_turn)  # its first chunk has been parsed: it holds or has lent its turn
    quick = await asyncio.wait_for(
        read_upload(content_type, pieces(body), tmp_path / "fast", limits, turns.turn(1.0)), 5
    )
    assert quick.path is not None and quick.path.read_bytes() == photo
    assert not trickling.done(), "the slow upload is still arriving"
    await asyncio.wait_for(trickling, 10)
    assert (tmp_path / "slow").read_bytes() == photo and turns.busy == 0


async def test_a_cancelled_wait_for_a_turn_leaks_no_lane() -> None:
    turns = Turns(lanes=1)
    holder = turns.turn(0.0)
    await holder.take()
    waiting = asyncio.create_task(turns.turn(1.0).take())
    await eventually(lambda: turns.crowded, "the second upload to wait for the lane")
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert not turns.crowded
    holder.give_back()
    assert turns.busy == 0
    latecomer = turns.turn(2.0)
    await asyncio.wait_for(latecomer.take(), 1)
    latecomer.give_back()


@pytest.mark.parametrize("size", [(400, 300), (64, 48)])  # the small one's half fits in a file buffer
async def test_what_arrived_is_on_disk_when_the_booth_pauses(tmp_path: Path, size: tuple[int, int]) -> None:
    """Bytes below a write batch are not held in memory while the booth is quiet (a crash keeps them):
    on disk, not in the process's file buffer."""
    photo = make_jpeg(*size, seed=6)
    body, content_type = build_multipart(photo, BoothForm("pw"))
    half = len(body) // 2
    paused = asyncio.Event()
    resume = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:half]
        paused.set()
        await resume.wait()
        yield body[half:]

    limits = Limits(max_bytes=10_000_000, idle_timeout_seconds=5)
    dest = tmp_path / "photo.part"
    reading = asyncio.create_task(read_upload(content_type, chunks(), dest, limits))
    await paused.wait()
    start = body.index(b"\xff\xd8\xff")
    # flushed within the pause (0.05 s), long before the 5 s idle timeout: polled, at most 2 s
    await eventually(lambda: dest.exists() and dest.read_bytes() == body[start:half], "the first half on disk", 2.0)
    assert not reading.done(), "still waiting for the rest while the booth pauses"
    resume.set()
    await asyncio.wait_for(reading, 5)
    assert dest.read_bytes() == photo


async def test_new_uploads_wait_while_held_and_uploads_under_way_go_on(tmp_path: Path) -> None:
    """Back-pressure: while the image workers have enough waiting, a new upload is not parsed (its bytes
    wait at the socket), but one already arriving finishes; when the hold ends, the new one goes on."""
    photo = make_jpeg(400, 300, seed=9)
    body, content_type = build_multipart(photo, BoothForm("pw"))
    held = {"now": False}
    turns = Turns(lanes=2, hold=lambda: held["now"])
    limits = Limits(max_bytes=10_000_000, idle_timeout_seconds=5)

    first_turn = turns.turn(0.0)
    under_way = asyncio.create_task(
        read_upload(content_type, pieces(body, pause=0.02), tmp_path / "a", limits, first_turn)
    )
    await _started(first_turn)
    held["now"] = True
    new = asyncio.create_task(read_upload(content_type, pieces(body), tmp_path / "b", limits, turns.turn(1.0)))
    await asyncio.wait_for(under_way, 10)
    assert (tmp_path / "a").read_bytes() == photo
    assert not new.done() and not (tmp_path / "b").exists()
    held["now"] = False
    await asyncio.wait_for(new, 2)
    assert (tmp_path / "b").read_bytes() == photo and turns.busy == 0


async def test_booths_waiting_between_their_chunks_do_not_make_the_server_look_backlogged() -> None:
    """A booth on a slow network that waits a moment for a lane between its chunks is not receiving work
    piling up (eight such booths starting together keep the lanes taken much of the time, the CPU idle):
    only a new upload, or one whose bytes are there at once, waiting for a lane makes the server backlogged
    (then an early decode would only reorder work, booth/early.py)."""
    turns = Turns(lanes=1)
    paced, steady = turns.turn(1.0), turns.turn(2.0)
    await paced.take()
    paced.waiting_for_bytes()  # its next chunk does not come at once: it lends its turn back
    await eventually(lambda: not paced.held, "the slow booth to lend its turn")
    await steady.take()
    steady.waiting_for_bytes()
    steady.bytes_came()  # its next chunk was there at once: the server sets its pace
    steady.give_back()
    assert paced.network_paced and not steady.network_paced

    holder = turns.turn(0.0)
    await holder.take()
    waits = [asyncio.create_task(paced.take())]
    await eventually(lambda: turns.crowded, "the slow booth to wait for the lane")
    assert not turns.backlogged
    for turn in (steady, turns.turn(3.0)):  # one whose bytes are there at once, then a new upload
        waits.append(asyncio.create_task(turn.take()))
        await eventually(lambda: turns.backlogged, "the upload to wait for the lane")
        waits.pop().cancel()
        await eventually(lambda: not turns.backlogged, "the cancelled wait to leave")
    for task in waits:
        task.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    holder.give_back()
    assert turns.busy == 0


def test_the_write_batch_is_a_share_of_one_memory_budget() -> None:
    """Few uploads under way write in large batches (fewer threaded writes); many write in small ones, so
    what all of them hold in memory stays bounded."""
    turns = Turns()
    sizes = {}
    for reading in (0, 1, 16, 17, 64, 200):
        turns.reading = reading
        sizes[reading] = _batch(turns)
        assert FLUSH_BYTES <= sizes[reading] <= FAST_FLUSH_BYTES
        assert reading * sizes[reading] <= max(PENDING_BUDGET_BYTES, reading * FLUSH_BYTES)
    assert sizes[1] == sizes[16] == FAST_FLUSH_BYTES
    assert sizes[17] < FAST_FLUSH_BYTES
    assert sizes[200] == FLUSH_BYTES


async def test_uploads_under_way_are_counted_and_a_failed_one_is_not_left_counted(tmp_path: Path) -> None:
    turns = Turns()
    photo = make_jpeg(400, 300, seed=6)
    body, content_type = build_multipart(photo, BoothForm("pw"))
    seen: list[int] = []

    async def watched(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            seen.append(turns.reading)
            yield chunk

    limits = Limits(max_bytes=10_000_000, idle_timeout_seconds=5)
    await read_upload(content_type, watched(pieces(body)), tmp_path / "a.jpg", limits, turn=turns.turn(0.0))
    assert seen and set(seen) == {1} and turns.reading == 0
    with pytest.raises(MalformedRequest, match="ended before"):
        cut = pieces(body[: len(body) // 2])  # the booth hung up halfway
        await read_upload(content_type, cut, tmp_path / "b.jpg", limits, turn=turns.turn(0.0))
    assert turns.reading == 0
    with pytest.raises(TooLarge):
        small = Limits(max_bytes=len(body) // 2, idle_timeout_seconds=5)
        await read_upload(content_type, pieces(body), tmp_path / "c.jpg", small, turn=turns.turn(0.0))
    assert turns.reading == 0
    paused = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        paused.set()
        await asyncio.sleep(60)
        yield body[len(body) // 2 :]

    reading = asyncio.create_task(read_upload(content_type, stalls(), tmp_path / "d.jpg", limits, turn=turns.turn(0.0)))
    await paused.wait()
    assert turns.reading == 1
    reading.cancel()  # the job's deadline
    await asyncio.gather(reading, return_exceptions=True)
    assert turns.reading == 0


@pytest.mark.parametrize("budgeted", [True, False])
async def test_an_upload_without_a_turn_keeps_the_smallest_batch(tmp_path: Path, budgeted: bool) -> None:
    """A booth upload is counted with the others and, alone, gathers up to FAST_FLUSH_BYTES before writing; an
    upload read without a turn (the client API's) is not counted, so it keeps to FLUSH_BYTES in memory."""
    photo = make_jpeg(3200, 2400, seed=9, quality=98)
    body, content_type = build_multipart(photo, BoothForm("pw"))
    dest = tmp_path / "photo.part"
    start = body.index(b"\xff\xd8\xff")
    in_memory: list[int] = []

    async def watched() -> AsyncIterator[bytes]:
        for offset in range(0, len(body), 65536):
            on_disk = dest.stat().st_size if dest.exists() else 0
            in_memory.append(max(0, offset - start) - on_disk)  # parsed photo bytes not written yet
            await asyncio.sleep(0.01)  # the network (over 3 ms): the upload lends its turn, no FAST batch
            yield body[offset : offset + 65536]

    limits = Limits(max_bytes=20_000_000, idle_timeout_seconds=5)
    turn = Turns().turn(0.0) if budgeted else None
    await read_upload(content_type, watched(), dest, limits, turn=turn)
    assert dest.read_bytes() == photo
    if budgeted:
        assert max(in_memory) > 2 * FLUSH_BYTES, max(in_memory)
    else:
        assert max(in_memory) <= FLUSH_BYTES + 65536, max(in_memory)


async def test_a_booth_that_pauses_mid_upload_and_goes_on_loses_no_byte(booth: Booth) -> None:
    """Over a real socket: when the booth pauses with photo bytes in the server's memory, the server's wait
    for the next chunk is cut short (0.05 s), what arrived is written, and the chunk is asked for again
    (web/booth.BodyChunks: a cut wait leaves the bytes with uvicorn). The photo stored is the photo sent,
    byte for byte."""
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    photo = make_jpeg(400, 300, seed=8)
    body = booth_form(photo)
    reader, writer = await asyncio.open_connection("127.0.0.1", int(booth.url.rsplit(":", 1)[1]))
    head = f"POST /booth/gemini/1 HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART['Content-Type']}\r\n"
    writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 3])
    await writer.drain()
    incoming = booth.services.media.root / "incoming"
    await eventually(lambda: any(p.stat().st_size for p in incoming.glob("*.part")), "the first third spooled")
    quarters = [body[len(body) * i // 4 : len(body) * (i + 1) // 4] for i in range(4)]
    for piece in (body[len(body) // 3 : len(body) // 2], *quarters[2:]):
        await asyncio.sleep(0.12)  # longer than the server's pause window: a wait with bytes pending is cut
        writer.write(piece)
        await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 30)
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    writer.close()
    assert status_line.split()[1] == b"200", status_line
    async with booth.api() as client:
        stored = (await client.get(f"/api/jobs/{headers['x-job-id']}/photo")).content
    assert stored == photo


def test_only_uvicorns_receive_is_trusted_to_be_cut_short() -> None:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    class Wrapping:  # a middleware's own receive around the server's
        async def receive(self) -> dict[str, object]:
            return await receive()

    assert not BodyChunks(receive).cancel_safe
    assert not BodyChunks(Wrapping().receive).cancel_safe
    cycle = object.__new__(RequestResponseCycle)  # uvicorn's h11 request cycle: its bound `receive`
    assert BodyChunks(cycle.receive).cancel_safe


async def test_a_receive_not_safe_to_cut_loses_nothing_at_a_pause(tmp_path: Path) -> None:
    """A `receive` that would lose its chunk if its wait were cut (like httpx's ASGITransport, whose body
    generator a cancellation closes) is awaited in a task at each pause, as before: the whole photo arrives."""
    photo = make_jpeg(400, 300, seed=10)
    body, content_type = build_multipart(photo, BoothForm("pw"))
    chunks = pieces(body, 4096, pause=0.08)  # longer pauses than the server's 0.05 s window

    async def receive() -> dict[str, object]:
        try:
            return {"type": "http.request", "body": await chunks.__anext__(), "more_body": True}
        except StopAsyncIteration:
            return {"type": "http.request", "body": b"", "more_body": False}

    limits = Limits(max_bytes=10_000_000, idle_timeout_seconds=5)
    dest = tmp_path / "photo.part"
    await read_upload(content_type, BodyChunks(receive), dest, limits, turn=Turns().turn(0.0))
    assert dest.read_bytes() == photo


async def test_a_cancelled_upload_closes_its_file_only_after_the_write_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline (or a dropped booth) cancels an upload while its threaded write is still running: the
    thread cannot be stopped, so the cancel takes effect when that write ends, and the file is closed after
    it — not under it, never opened again by it (a cut-short original and a leaked descriptor before), and
    free to be moved to trash at once (Windows cannot move a file still open)."""
    photo = make_jpeg(3200, 2400, seed=11, quality=98)
    body, content_type = build_multipart(photo, BoothForm("pw"))
    writing, release = threading.Event(), threading.Event()
    outcomes: list[BaseException | None] = []
    collectors: list[_Collector] = []
    real_write = _Collector._write

    def slow_write(self: _Collector, data: bytes | bytearray, last: bool) -> None:
        collectors.append(self)
        if len(collectors) == 2:  # the second write: the file is open, the first batch in it
            writing.set()
            release.wait(10)
        try:
            real_write(self, data, last)
            outcomes.append(None)
        except BaseException as exc:  # what the thread met is the observation
            outcomes.append(exc)
            raise

    monkeypatch.setattr(_Collector, "_write", slow_write)
    dest = tmp_path / "photo.part"
    limits = Limits(max_bytes=20_000_000, idle_timeout_seconds=5)
    reading = asyncio.create_task(read_upload(content_type, pieces(body, 65536), dest, limits, turn=Turns().turn(0.0)))
    assert await asyncio.to_thread(writing.wait, 10), "a threaded write started"
    reading.cancel()
    await asyncio.sleep(0.2)
    collector = collectors[-1]
    assert not reading.done(), "the cancelled upload waits for the write under way"
    reading.cancel()  # a second cancel (the booth gone, then the deadline) does not cut the wait short
    await asyncio.sleep(0.1)
    assert not reading.done(), "a second cancel waits for the write under way too"
    assert collector.fh is not None, "the file stays open while its write is under way"
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert collector.fh is None, "the file closed once the write ended"
    assert outcomes == [None, None], f"the write under way finished cleanly: {outcomes}"
    assert len(collectors) == 2, "nothing more was written after the cancel"
    written = dest.read_bytes()
    assert written and photo.startswith(written), "what was written is the photo's start, once"
