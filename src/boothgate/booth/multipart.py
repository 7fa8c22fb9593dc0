"""Streaming multipart/form-data reader for booth uploads.

The photo goes to a file on disk while it arrives (hashing it on the way), so a 30 MB upload never
sits in memory. The parser runs on the event loop, but opening, writing and hashing the file do not:
they are batched (`_batch`: 256 KB to 1 MB, by how many uploads are under way) and done in a thread,
because a write into a busy page cache can block for hundreds of milliseconds (dirty-page throttling)
and would stall every other booth.

Every limit is enforced while reading: total bytes (whatever Content-Length claimed), number of
fields, size of a field, and an idle timeout per chunk so a client that trickles bytes is cut off.

With a `proof` (the booth path), photo bytes reach the disk only once the upload password is proved:
until then they stay in memory, accounted by the proof; a `password` field is offered to the proof as
soon as it has arrived, so a wrong one ends the upload there (see booth/strangers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from boothgate.booth.turns import Turn, Turns
from boothgate.errors import LockedOut, MalformedRequest, StorageFailed, TooLarge, Unauthorized

# Booth and client programs name their file part differently (Breeze `fileToUpload`, others `file`, `image`,
# `photo`). One file part is the photo whatever its name; of several, the first of these names wins.
FILE_FIELDS = ("fileToUpload", "file", "image", "photo")
# The upload password may come in any of these form fields (Breeze documents "password or API key" without
# naming the field). They are secrets: never logged or recorded (`failwell.SECRET_FIELDS`).
PASSWORD_FIELDS = ("password", "api_key", "apikey", "key")
# Most file-part names remembered for the error that names them.
MAX_FILE_NAMES = 10
# Photo bytes kept in memory per upload before a threaded write, at least: 200 uploads at once hold ~50 MB.
FLUSH_BYTES = 256 * 1024
# ... and all uploads together, when fewer are under way: each upload's batch is its share of this (up to
# FAST_FLUSH_BYTES). Sixteen booths at once write 1 MB at a time instead of 256 KB: a quarter of the
# threaded writes, each a round trip for the event loop (`python -m bench --only loop16`).
PENDING_BUDGET_BYTES = 16 * 1024 * 1024
# The batch of an upload whose bytes keep coming at once (it keeps its turn: loopback, a fast LAN). Only
# the few uploads holding a turn gather this much; each threaded write costs the event loop a round trip.
FAST_FLUSH_BYTES = 1024 * 1024
# A booth that pauses longer than this finds what it has sent so far on disk (it survives a crash).
PAUSE_FLUSH_SECONDS = 0.05
# After a wrong password the rest of the body is read and dropped (at most this long), so the client
# reads its 401 instead of a connection reset.
DRAIN_SECONDS = 2.0


class Proof(Protocol):
    """Whether the request has proved the upload password (services/strangers.PasswordProof)."""

    proven: bool

    async def offer(self, candidate: str | None) -> None: ...

    def hold(self, size: int) -> None: ...

    def let_go(self, size: int) -> None: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    idle_timeout_seconds: float
    max_fields: int = 1000
    max_field_bytes: int = 64 * 1024
    max_header_bytes: int = 8 * 1024


@dataclass
class Upload:
    """What the booth sent: text fields and the photo spooled to `path`."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str | None = None
    size: int = 0
    sha256: str = ""
    head: bytes = b""
    body_bytes: int = 0
    # The names of the file parts the body carried, in order (the photo is one of them).
    file_parts: list[str] = field(default_factory=list)

    @property
    def form_password(self) -> str | None:
        """The upload password from whichever password field the booth used."""
        for name in PASSWORD_FIELDS:
            if self.fields.get(name):
                return self.fields[name]
        return None


class _Collector:
    """python-multipart callbacks that fill an Upload; limits raise from inside the callbacks."""

    def __init__(self, upload: Upload, dest: Path, limits: Limits, proof: Proof | None = None) -> None:
        self.upload, self.dest, self.limits, self.proof = upload, dest, limits, proof
        self.password: str | None = None  # a password field that arrived and was not offered yet
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.headers: dict[str, bytes] = {}
        self.kind: str = "skip"  # file | field | skip
        self.name = ""
        self.buffer = bytearray()
        self.fh: IO[bytes] | None = None
        self.hasher = hashlib.sha256()
        self.pending = bytearray()  # photo bytes not yet written (see `flush`)
        self.file_seen = False  # a file part has become the photo (a better-named later one replaces it)
        self.file_rank = len(FILE_FIELDS)  # the photo part's place in FILE_FIELDS (len: another name)
        self.file_ended = False  # the photo part is complete; finished at the next flush
        self.field_count = 0
        self.finished = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self.header_name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.headers.clear()
        self.buffer = bytearray()  # a new one: `clear` would keep the last field's capacity allocated
        self.kind, self.name = "skip", ""

    def header_end(self) -> None:
        self.headers[self.header_name.decode("latin-1").strip().lower()] = bytes(self.header_value).strip()
        self.header_name.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        disposition, params = parse_options_header(self.headers.get("content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise MalformedRequest("A form part has no name.", code="bad_multipart")
        self.name = _text(params[b"name"])
        filename = params.get(b"filename")
        if filename is not None or self.name in FILE_FIELDS:
            if len(self.upload.file_parts) < MAX_FILE_NAMES:
                self.upload.file_parts.append(self.name[:60])
            rank = FILE_FIELDS.index(self.name) if self.name in FILE_FIELDS else len(FILE_FIELDS)
            if not self.file_seen or rank < self.file_rank:
                if self.file_seen:
                    self._restart_photo()
                self.file_seen, self.file_rank = True, rank
                self.kind = "file"
                self.upload.filename = _safe_filename(_text(filename or b""))
            return  # other files are read past and dropped
        self.field_count += 1
        if self.field_count > self.limits.max_fields:
            raise MalformedRequest(
                f"Too many form fields (more than {self.limits.max_fields}).", code="too_many_fields"
            )
        self.kind = "field"

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = memoryview(data)[start:end]  # a view: the bytes are copied once, into the buffer they go to
        if self.kind == "file":
            if not self.may_write:
                assert self.proof is not None
                self.proof.hold(len(chunk))  # in memory until the password is proved
            self.pending.extend(chunk)
            if len(self.upload.head) < 16:
                self.upload.head = (self.upload.head + chunk)[:16]
            self.upload.size += len(chunk)
        elif self.kind == "field":
            if not self.may_write:
                assert self.proof is not None
                self.proof.hold(len(chunk))  # a field is held until the body ends: it counts too (issue 31)
            self.buffer.extend(chunk)
            if len(self.buffer) > self.limits.max_field_bytes:
                raise TooLarge(
                    f"Form field '{self.name[:50]}' is larger than {self.limits.max_field_bytes} bytes.",
                    code="field_too_large",
                )

    def part_end(self) -> None:
        if self.kind == "file":
            self.file_ended = True
        elif self.kind == "field":
            self.upload.fields[self.name] = _text(self.buffer)  # decoded from the buffer, not from a copy
            self.buffer = bytearray()
            if self.name in PASSWORD_FIELDS and self.upload.fields[self.name]:
                self.password = self.upload.fields[self.name]
        self.kind = "skip"

    def end(self) -> None:
        self.finished = True

    def _restart_photo(self) -> None:
        """A better-named file part follows the one taken so far: the photo starts again with it."""
        self.pending.clear()
        if self.fh is not None:
            self.fh.close()  # the next write reopens it, truncated
            self.fh = None
        self.hasher = hashlib.sha256()
        self.file_ended = False
        up = self.upload
        up.path, up.sha256, up.size, up.head = None, "", 0, b""

    def check_parts(self) -> None:
        """Several file parts and none named as a photo: which one is meant cannot be known."""
        parts = self.upload.file_parts
        if len(parts) > 1 and self.file_rank == len(FILE_FIELDS):
            raise MalformedRequest(
                f"The upload has several file parts ({', '.join(repr(p) for p in parts)}) and none named "
                f"{', '.join(FILE_FIELDS)}: send the photo in 'fileToUpload' (or send only one file).",
                code="ambiguous_file",
            )

    def _write(self, data: bytes | bytearray, last: bool) -> None:
        """In a thread: append to the file (opened on the first write) and the hash; close after the last."""
        if self.fh is None:
            self.fh = self.dest.open("wb")
        self.fh.write(data)
        self.hasher.update(data)
        if last:
            self.fh.close()
            self.fh = None
        else:  # to the operating system, not left in this process's file buffer: a crash keeps it
            self.fh.flush()

    @property
    def may_write(self) -> bool:
        return self.proof is None or self.proof.proven

    @property
    def has_pending(self) -> bool:
        return bool(self.pending) and self.upload.path is None and self.may_write

    async def offer_password(self) -> None:
        """A password field has arrived: check it now; once proved, what was held goes to disk."""
        candidate, self.password = self.password, None
        if self.proof is None or self.proof.proven or not candidate:
            return
        await self.proof.offer(candidate)
        await self.flush(now=True)

    async def flush(self, now: bool = False, batch: int = FLUSH_BYTES) -> None:
        """Write pending photo bytes once `batch` have gathered, or all of them once the photo part ended
        (or `now`, when the upload pauses)."""
        if not self.file_seen or self.upload.path is not None or not self.may_write:
            return
        if not (now or self.file_ended or len(self.pending) >= batch):
            return
        # The buffer itself, not a copy (a megabyte each batch): nothing adds to it while this waits, since
        # only this upload's own parsing does, and it waits here. Emptied once written.
        data, last = self.pending, self.file_ended
        writing = asyncio.get_running_loop().run_in_executor(None, self._write, data, last)
        try:
            await _outlasting_cancel(writing)
        except OSError as exc:  # the disk is full or gone: the server's problem, not the booth's
            data.clear()  # not kept alive by the error's traceback
            raise StorageFailed(f"Could not store the upload: {exc.strerror or exc}.") from exc
        data.clear()
        if last:
            self.upload.path = self.dest
            self.upload.sha256 = self.hasher.hexdigest()

    def forget(self) -> None:
        """An upload that did not prove the password: drop what was held for it, so the memory goes when
        its budget does (its error's traceback, or the throttle's delay before the 401, would otherwise
        keep it). Field names stay (the failure record counts them), their values do not."""
        self.pending = bytearray()
        self.buffer = bytearray()
        self.upload.fields = dict.fromkeys(self.upload.fields, "")

    def close(self) -> None:
        """Close a file left open by a failed upload (its own error is the one that counts)."""
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()
            self.fh = None


def _text(raw: bytes | bytearray) -> str:
    """Field names and values as text; invalid UTF-8 is kept readable, not refused."""
    return raw.decode("utf-8", errors="replace").replace("\x00", "")


def _safe_filename(name: str) -> str:
    """The booth's file name, for metadata only (we never use it as a path)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable())[:200]


def boundary_of(content_type: str | None) -> bytes:
    if not content_type:
        raise MalformedRequest("The request has no Content-Type; send multipart/form-data.", code="bad_multipart")
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise MalformedRequest(
            "The request must be multipart/form-data with the photo in the field 'fileToUpload'.",
            code="bad_multipart",
        )
    return params[b"boundary"]


def _batch(turns: Turns) -> int:
    """How many photo bytes an upload gathers before its threaded write: its share of the budget."""
    return max(FLUSH_BYTES, min(FAST_FLUSH_BYTES, PENDING_BUDGET_BYTES // max(1, turns.reading)))


async def _next_chunk(iterator: AsyncIterator[bytes], collector: _Collector, limits: Limits, turn: Turn) -> bytes:
    """The next chunk of the body. The upload keeps its turn only if the chunk comes at once (see
    booth/turns.py). When the booth pauses with photo bytes still in memory, they are written first:
    what has arrived is on disk within PAUSE_FLUSH_SECONDS, even if the server dies."""
    turn.waiting_for_bytes()
    try:
        if not collector.has_pending:
            async with asyncio.timeout(limits.idle_timeout_seconds):
                return await iterator.__anext__()
        if getattr(iterator, "cancel_safe", False):  # web/booth.BodyChunks: a cut wait loses nothing
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PAUSE_FLUSH_SECONDS):
                    return await iterator.__anext__()
            turn.give_back()
            await collector.flush(now=True)
            async with asyncio.timeout(limits.idle_timeout_seconds):
                return await iterator.__anext__()
        # A task, because cancelling the body iterator itself would close it.
        arriving = asyncio.ensure_future(iterator.__anext__())
        done, _ = await asyncio.wait({arriving}, timeout=PAUSE_FLUSH_SECONDS)
        if not done:
            turn.give_back()
            try:
                await collector.flush(now=True)
            except BaseException:
                arriving.cancel()
                raise
        async with asyncio.timeout(limits.idle_timeout_seconds):
            return await arriving
    finally:
        turn.bytes_came()


async def read_upload(
    content_type: str | None,
    chunks: AsyncIterator[bytes],
    dest: Path,
    limits: Limits,
    turn: Turn | None = None,
    proof: Proof | None = None,
    upload: Upload | None = None,
    on_progress: Callable[[Upload], None] | None = None,
) -> Upload:
    """Read the whole body into an Upload, the file going to `dest`. Raises BoothError subclasses.

    `turn`, this upload's place among all uploads (booth/turns.py): arrived chunks are parsed only
    while holding it, so during a burst the oldest uploads finish arriving first.
    `upload`, when given, is filled in place: the caller keeps the fields of a failed upload.
    `on_progress` is called whenever more of the photo is on disk (an early decode follows it).
    """
    # Without a turn (the client API's uploads), this upload is not counted with the others: the smallest batch.
    budgeted = turn is not None
    turn = turn or Turns(1).turn(0.0)
    upload = upload if upload is not None else Upload()
    collector = _Collector(upload, dest, limits, proof)
    parser = MultipartParser(boundary_of(content_type), collector.callbacks())  # type: ignore[arg-type]
    iterator = chunks.__aiter__()
    turn.turns.reading += 1
    try:
        while True:
            try:
                chunk = await _next_chunk(iterator, collector, limits, turn)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise MalformedRequest(
                    f"The upload stalled: nothing arrived for {limits.idle_timeout_seconds:g} s.",
                    code="upload_stalled",
                ) from None
            upload.body_bytes += len(chunk)
            if upload.body_bytes > limits.max_bytes:
                raise TooLarge(f"The upload is larger than {limits.max_bytes:,} bytes.")
            if chunk:
                # A chunk waiting for its turn is held too: every byte of an unproven request counts.
                unproven = not collector.may_write
                if unproven:
                    assert proof is not None
                    proof.hold(len(chunk))
                fast = turn.held  # kept since the last chunk: the bytes come as fast as they are parsed
                if not fast:
                    # nothing over one ordinary batch waits for a turn in memory
                    await collector.flush(batch=_batch(turn.turns) if budgeted else FLUSH_BYTES)
                await turn.take()
                parser.write(chunk)
                if unproven:
                    assert proof is not None
                    proof.let_go(len(chunk))  # parsed: what of it is kept was held by the parser's callbacks
                del chunk
                batch = _batch(turn.turns) if budgeted else FLUSH_BYTES
                await collector.flush(batch=FAST_FLUSH_BYTES if fast else batch)
                if collector.password is not None:
                    turn.give_back()  # a wrong password is held (throttle): not while holding a turn
                    await collector.offer_password()
                if on_progress is not None and collector.fh is not None:
                    on_progress(upload)
        turn.give_back()
        parser.finalize()
        if collector.password is not None:
            await collector.offer_password()
        await collector.flush()
    except MultipartParseError as exc:
        raise MalformedRequest(f"The multipart body is malformed: {exc}.", code="bad_multipart") from exc
    except (Unauthorized, LockedOut):  # a refused password: the rest of the body is read and dropped
        turn.give_back()
        await _drain(iterator, limits)
        raise
    finally:
        turn.turns.reading -= 1
        turn.give_back()
        collector.close()
        if proof is not None:
            if not proof.proven:
                # Failed, or complete without the password (header and link were checked before the
                # body): the request cannot be proved any more, its bytes are dropped with their budget.
                collector.forget()
            proof.release()
    if not collector.finished:
        raise MalformedRequest("The upload ended before the multipart body was complete.", code="upload_incomplete")
    collector.check_parts()
    return upload


async def _outlasting_cancel(writing: asyncio.Future[None]) -> None:
    """Wait for a threaded write, even when cancelled (the deadline, a dropped booth): a thread cannot be
    stopped, and a file closed, moved to trash or removed under its writer is reopened and cut short by it
    (or cannot be moved at all, on Windows). One batch is at most a few megabytes: milliseconds. The first
    cancel is raised once the write has ended."""
    try:
        await asyncio.shield(writing)
    except asyncio.CancelledError:
        while not writing.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([writing])
        if not writing.cancelled():
            writing.exception()  # retrieved: the cancel is the news, not a failed write of a cancelled upload
        raise


async def _drain(iterator: AsyncIterator[bytes], limits: Limits) -> None:
    """Read and drop what is left of a refused body (bounded in bytes and time; errors ignored)."""
    received = 0
    with contextlib.suppress(Exception):
        async with asyncio.timeout(min(DRAIN_SECONDS, limits.idle_timeout_seconds)):
            async for chunk in iterator:
                received += len(chunk)
                if received > limits.max_bytes:
                    return


def no_file_message(upload: Upload) -> str:
    """The 400 for a body without a photo, naming the parts it did carry."""
    seen = [*upload.file_parts, *upload.fields]
    named = f" The request had: {', '.join(repr(n[:40]) for n in seen[:10])}." if seen else ""
    return f"No photo: send the file in the form field 'fileToUpload' (or 'file', 'image', 'photo').{named}"
