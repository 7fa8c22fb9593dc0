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
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

# Uploads parsed at the same moment. Two: while one waits for its threaded write, the next uses the loop.
LANES = 2
# How long an upload keeps its turn waiting for its next chunk. Over loopback or a LAN the next chunk is
# there within a pass or two of the event loop; a booth on a real network waits longer and lends its turn.
KEEP_SECONDS = 0.003


class Turns:
    """A semaphore of `lanes` whose waiters are served oldest first (by `arrived`, then first come)."""

    def __init__(self, lanes: int = LANES) -> None:
        self.lanes = lanes
        self.busy = 0
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def crowded(self) -> bool:
        """Uploads wait for a turn: receiving alone keeps the server's CPU busy."""
        return any(not granted.done() for _, _, granted in self._waiting)

    def turn(self, arrived: float) -> Turn:
        return Turn(self, arrived)

    async def _acquire(self, arrived: float) -> None:
        if self.busy < self.lanes:  # then nobody waits (a lane passes straight to a waiter on release)
            self.busy += 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (arrived, next(self._order), granted))
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self._release()  # granted as it was cancelled: hand the lane on
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_result(None)  # the lane passes straight to the oldest waiter
                return
        self.busy -= 1


class Turn:
    """One upload's place in `Turns`: `take` before parsing a chunk; `hold_while` around waiting for the
    next chunk keeps the turn only `KEEP_SECONDS`; `give_back` before anything that may wait long."""

    def __init__(self, turns: Turns, arrived: float) -> None:
        self.turns, self.arrived = turns, arrived
        self.held = False
        self._lend: asyncio.TimerHandle | None = None

    async def take(self) -> None:
        if not self.held:
            await self.turns._acquire(self.arrived)
            self.held = True

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

    def bytes_came(self) -> None:
        if self._lend is not None:
            self._lend.cancel()
            self._lend = None

    def _lent(self) -> None:
        self._lend = None
        if self.held:
            self.held = False
            self.turns._release()
