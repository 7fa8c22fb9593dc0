"""Waiting for something to happen in a test: poll for the event with a timeout, never sleep a fixed time.

`await eventually(lambda: fake.deliveries == [200, 200], "the second delivery")` checks at once, then every
`step` seconds, and fails with `what` (and the last value seen) if the condition is still false after `timeout`.
The condition may be a plain function or a coroutine function; a generous timeout costs nothing when the
event comes, so it is sized for a loaded machine, not for the expected time.

`server_seconds(booth, answer)` is the other half of timing in tests: a deadline checked on the server's own
record of the job, not on a booth-side stopwatch that adds connect, upload and the trip back.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

Condition = Callable[[], Any] | Callable[[], Awaitable[Any]]


async def eventually(condition: Condition, what: str, timeout: float = 10.0, step: float = 0.02) -> Any:
    """The condition's first truthy value; AssertionError naming `what` if none came within `timeout` s."""
    until = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > until:
            raise AssertionError(f"waited {timeout:g} s for {what}; last saw {value!r}")
        await asyncio.sleep(step)


async def server_seconds(booth: Any, answer: Any) -> float:
    """The job's total_seconds as the server recorded it (from the request's arrival to its answer): the
    deadline checked on the server's own clock, without the booth's connect, upload and trip back."""
    async with booth.api() as client:
        response = await client.get(f"/api/jobs/{answer.headers['x-job-id']}")
    assert response.status_code == 200, response.text
    return float(response.json()["total_seconds"])
