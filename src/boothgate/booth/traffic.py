"""Booth traffic: which booth photos are still on their way to a provider (received, admitted, prepared).

The client API's batches run only on spare capacity (api/batches.py): a batch photo starts only while no
booth photo is in this state and the image workers have nothing waiting. A booth photo at its provider
(or after it) no longer needs the image workers until its result, so it does not hold the batch back.
"""

from __future__ import annotations

from typing import Protocol


class _Job(Protocol):
    @property
    def request(self) -> object: ...


class Traffic:
    def __init__(self) -> None:
        self._coming: set[int] = set()

    @staticmethod
    def _is_booth(job: _Job) -> bool:
        return getattr(job.request, "source", None) == "booth"

    def arrived(self, job: _Job) -> None:
        if self._is_booth(job):
            self._coming.add(id(job))

    def at_provider(self, job: _Job) -> None:
        self._coming.discard(id(job))

    def left(self, job: _Job) -> None:
        self._coming.discard(id(job))

    @property
    def coming(self) -> int:
        """Booth photos received but not yet handed to their provider."""
        return len(self._coming)
