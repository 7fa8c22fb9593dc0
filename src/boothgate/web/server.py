"""How `boothgate serve` runs uvicorn: HTTP/1.1 with a time limit on the request head.

uvicorn starts no timer until a request's head is complete, so a client that sends its headers one
byte per second (slowloris) holds a connection open for as long as it likes. The body is bounded by
the spine (idle timeout and deadline); this bounds the head: a connection whose request line and
headers have not fully arrived within `head_timeout_seconds` is closed. The same limit applies again
to each further request on a kept-alive connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from boothgate.settings import Settings


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head does not arrive in time."""

    head_timeout_seconds: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is complete (or the connection is done)
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # a kept-alive connection: the next request's head gets the same limit

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def protocol_class(head_timeout_seconds: float) -> type[H11Protocol]:
    """The protocol class with its head timeout set (uvicorn instantiates it per connection)."""
    return type("BoothHttpProtocol", (HeadTimeoutH11Protocol,), {"head_timeout_seconds": head_timeout_seconds})


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` shared by `boothgate serve` and tests."""
    return {
        "http": protocol_class(settings.upload_idle_timeout_seconds),
        # Off by default (one line per job is logged instead); when on, link_secrets masks passwords in paths.
        "access_log": settings.access_log,
        "timeout_keep_alive": 30,
        # On SIGTERM / SIGINT uvicorn stops accepting and waits for the requests in flight; every booth has
        # its answer by its deadline, so that is as long as the wait may be (issue 31, class 6).
        "timeout_graceful_shutdown": int(settings.deadline_seconds) + 5,
        "proxy_headers": True,
    }


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain before its graceful stop (issue 27).

    On the first SIGTERM/SIGINT the node says so (`/health` answers 503, background work is no longer
    claimed here) but keeps serving for `drain_seconds`, so a load balancer's active health check takes it
    out of rotation while it can still answer; then uvicorn's own graceful stop closes the listener (a booth
    connecting now gets a refused connection, which the balancer retries on another node) and waits for
    every booth in flight. A second signal ends the drain at once.
    """

    def __init__(self, config: uvicorn.Config, drain_seconds: float, on_drain: Callable[[], None]) -> None:
        super().__init__(config)
        self.drain_seconds, self.on_drain = drain_seconds, on_drain
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_until is None:
            self._drain_until = time.monotonic() + self.drain_seconds
            with contextlib.suppress(Exception):  # a signal before start-up finished: nothing to drain yet
                self.on_drain()
            if self.drain_seconds > 0:
                self._captured_signals.append(sig)  # re-raised after the stop, as uvicorn does
                return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)
