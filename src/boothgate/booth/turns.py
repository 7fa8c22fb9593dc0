"""Whose arrived bytes are parsed next: uploads take turns oldest first, a few at a time.

Receiving a photo costs the server's one event loop real CPU (socket reads, HTTP and multipart parsing,
copies, the hash and the write). When many booths post at once and their bytes are all there — a burst
over loopback or a fast LAN — serving every upload a chunk in turn makes them all finish arriving at the
very end of the burst, and the image workers sit idle until then. Served oldest first instead, the first
photos finish arriving early and are prepared while the later ones still arrive: the same work, but the
workers and the receiving overlap, and each guest waits for the photos before theirs only.

An upload keeps its turn only while its next bytes are already there (`KEEP_SECONDS`); a booth on a slow
network lends its turn back while it waits for the network, so it never holds up the others, and asks
again (in order of age) when its next bytes come. Uploads waiting for a turn do not read their sockets:
the server holds one chunk of each (uvicorn pauses the connection), and TCP holds the rest at the booth.

`hold` adds back-pressure: while it is true (the image workers already have a photo waiting for each of
them), no *new* upload starts to be parsed; the CPU goes to the photos already here, so they finish in
the order they came instead of all together. Uploads already under way go on (a booth on a slow network
is never stopped halfway), and `hold` is asked again every `HOLD_POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

# Uploads parsed at the same moment. Two: while one waits for its threaded write, the next uses the loop.
LANES = 2
# How long an upload keeps its turn waiting for its next chunk. Over loopback or a LAN the next chunk is
# there within a pass or two of the event loop; a booth on a real network waits longer and lends its turn.
KEEP_SECONDS = 0.003
# While held back, new uploads are looked at again this often (a photo takes ~100 ms to prepare).
HOLD_POLL_SECONDS = 0.01


@dataclass(order=True)
class _Waiter:
    arrived: float
    order: int
    new: bool = field(compare=False)
    paced: bool = field(compare=False)  # the network sets its pace: it waits for a lane only between its chunks
    granted: asyncio.Future[None] = field(compare=False)


class Turns:
    """A semaphore of `lanes` whose waiters are served oldest first (by `arrived`, then first come)."""

    def __init__(self, lanes: int = LANES, hold: Callable[[], bool] | None = None) -> None:
        self.lanes = lanes
        self.hold = hold
        self.busy = 0
        self.reading = 0  # uploads under way (booth/multipart.read_upload): their photo bytes share a budget
        self._waiting: list[_Waiter] = []  # sorted, oldest first
        self._order = itertools.count()
        self._poll: asyncio.TimerHandle | None = None

    def turn(self, arrived: float) -> Turn:
        return Turn(self, arrived)

    @property
    def crowded(self) -> bool:
        """Uploads wait for a turn."""
        return any(not waiter.granted.done() for waiter in self._waiting)

    @property
    def backlogged(self) -> bool:
        """Uploads whose bytes are there wait for a turn — new ones, or ones the server (not the network)
        sets the pace of: receiving alone keeps the server's CPU busy. Booths on a slow network that wait a
        moment for a lane between their chunks do not count: eight of them starting together keep the two
        lanes taken much of the time (each lane is kept `KEEP_SECONDS` after a chunk), with the CPU idle."""
        return any(not w.granted.done() and (w.new or not w.paced) for w in self._waiting)

    async def _acquire(self, arrived: float, new: bool, paced: bool = False) -> None:
        waiter = _Waiter(arrived, next(self._order), new, paced, asyncio.get_running_loop().create_future())
        bisect.insort(self._waiting, waiter)
        self._grant()
        try:
            await waiter.granted  # returns at once when granted just now
        except BaseException:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._release()  # granted as it was cancelled: hand the lane on
            raise

    def _release(self) -> None:
        self.busy -= 1
        self._grant()

    def _grant(self) -> None:
        """Give free lanes to the oldest waiters; a new upload only while `hold` is false."""
        held: bool | None = None
        index = 0
        while self.busy < self.lanes and index < len(self._waiting):
            waiter = self._waiting[index]
            if waiter.granted.done():  # cancelled while waiting
                del self._waiting[index]
                continue
            if waiter.new:
                if held is None:
                    held = self.hold is not None and self.hold()
                if held:
                    index += 1
                    continue
            del self._waiting[index]
            self.busy += 1
            waiter.granted.set_result(None)
        if held and self._poll is None:
            self._poll = asyncio.get_running_loop().call_later(HOLD_POLL_SECONDS, self._look_again)

    def _look_again(self) -> None:
        self._poll = None
        self._grant()


class Turn:
    """One upload's place in `Turns`: `take` before parsing a chunk; `waiting_for_bytes` / `bytes_came`
    around waiting for the next chunk keep the turn only `KEEP_SECONDS`; `give_back` before anything that
    may wait long."""

    def __init__(self, turns: Turns, arrived: float) -> None:
        self.turns, self.arrived = turns, arrived
        self.held = False
        self.started = False
        self.lent = 0  # times its next bytes were not there at once
        self.kept = 0  # times they were
        self._lend: asyncio.TimerHandle | None = None

    async def take(self) -> None:
        if not self.held:
            await self.turns._acquire(self.arrived, new=not self.started, paced=self.network_paced)
            self.held = self.started = True

    def give_back(self) -> None:
        if self._lend is not None:
            self._lend.cancel()
            self._lend = None
        if self.held:
            self.held = False
            self.turns._release()

    def waiting_for_bytes(self) -> None:
        """The upload now awaits its next chunk: lend the turn back unless the chunk comes at once."""
        if self.held and self._lend is None:
            self._lend = asyncio.get_running_loop().call_later(KEEP_SECONDS, self._lent)

    @property
    def network_paced(self) -> bool:
        """Its bytes mostly had to be waited for: the network, not the server, sets this upload's pace."""
        return self.lent > self.kept

    def bytes_came(self) -> None:
        if self._lend is not None:
            self.kept += 1
            self._lend.cancel()
            self._lend = None

    def _lent(self) -> None:
        self._lend = None
        self.lent += 1
        if self.held:
            self.held = False
            self.turns._release()
