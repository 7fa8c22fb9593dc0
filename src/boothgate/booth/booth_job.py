"""The state of one booth request as it moves along the spine, and what the spine answers.

Shared by the spine (`booth/spine.py`) and its fail-well half (`booth/failwell.py`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from boothgate.booth.multipart import Upload
from boothgate.booth.strangers import PasswordProof
from boothgate.deadline import Deadline
from boothgate.operator.budget import Spend
from boothgate.providers.base import ProviderResult
from boothgate.settings import Settings
from boothgate.storage.models import Job, Slot

if TYPE_CHECKING:
    from boothgate.booth.early import EarlyDecode


class ProviderReplay(Protocol):
    """A durable API job's kept provider answers (api/job_queue.py): its run again after a restart uses
    the answer a provider already gave instead of calling it a second time."""

    async def load(self, slot: str) -> ProviderResult | None: ...

    async def save(self, slot: str, result: ProviderResult) -> None: ...


@dataclass
class BoothRequest:
    """What the web layer hands over: path, headers that matter, and the body stream."""

    provider: str
    number: str
    content_type: str | None
    content_length: int | None
    header_password: str | None
    body: AsyncIterator[bytes]
    received_at: float
    client: str
    source: str = "booth"  # "try" = Try it, "rehearsal" = rehearsal: no password, disabled slots allowed
    fallback_only: bool = False  # Try it / rehearsal of the slot's fallback alone (the primary is skipped)
    query: dict[str, str] = field(default_factory=dict)  # the upload link's query (?password=, ?style=)
    # The client API (source "api", api/jobs.py): the job id it already gave the client, the key's id, the
    # batch, and who hears each step the job enters (its progress). A booth leaves them unset.
    job_id: str | None = None
    api_key_id: str | None = None
    batch_id: str | None = None
    on_stage: Callable[[str], None] | None = None
    # A durable API job (api/job_queue.py): its provider answers kept, and whether the server is stopping
    # (then a cancel is a stop, not the client's: the job is left to run again after the restart).
    replay: ProviderReplay | None = None
    stopping: Callable[[], bool] | None = None


@dataclass
class Answer:
    status: int
    body: bytes
    media_type: str
    job_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class BoothJob:
    """The request's state as it moves along the spine."""

    record: Job
    request: BoothRequest
    deadline: Deadline
    incoming: Path
    settings: Settings  # as at arrival: a settings change never reaches a job in flight
    proof: PasswordProof
    stage: str = "receive"
    slot: Slot | None = None
    photo: Path | None = None
    upload: Upload | None = None
    reference: Path | None = None  # the slot's reference file at admission, held until the job ends
    # The slot's further references at admission (issue 28), in order, held like the first.
    more_references: list[tuple[Path, str]] = field(default_factory=list)  # (file, sha256)
    held: list[str] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    photo_size: tuple[int, int] | None = None  # upright, as the booth sent it: what the result is shaped to
    prompt: str = ""  # the slot's prompt with its placeholders filled from this request
    generation: int | None = None  # the provider registry's generation this job runs in (providers/registry.py)
    prompt_values: dict[str, str] = field(default_factory=dict)  # what fills placeholders (a fallback's too)
    early: EarlyDecode | None = None  # the photo decoded while it arrived (booth/early.py)
    spend: Spend | None = None  # the paid calls reserved against the event's budget (operator/budget.py)

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name == "stage" and self.request.on_stage is not None:
            self.request.on_stage(str(value))  # the client API's progress (never raises into the spine)

    def photo_shape(self) -> tuple[int, int]:
        """The photo's upright size as the booth sent it (for answers shaped like the photo)."""
        return self.photo_size or (1500, 1000)

    def mark(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.marks[name] = round(now - since, 4)
        return now
