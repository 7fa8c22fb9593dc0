"""Short-lived public links to prepared images, for providers that download their inputs (Turbotext).

A link is an unguessable token, serves exactly the bytes it was made for, and answers 404 once the
job's deadline has passed — or earlier, the moment the job's booth is answered (`revoke`): a provider
has no business downloading a guest's photo after the job is over. Links live in memory: they are
useless after a restart anyway, because the job that made them is gone.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from boothgate.deadline import Deadline
from boothgate.providers.base import PreparedImage

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


@dataclass(frozen=True)
class _Link:
    image: PreparedImage
    expires_at: float
    job_id: str | None = None


class MediaLinks:
    def __init__(self, public_base_url: str) -> None:
        self.public_base_url = public_base_url.rstrip("/")
        self._links: dict[str, _Link] = {}

    def publish_sync(self, image: PreparedImage, deadline: Deadline, job_id: str | None = None) -> str:
        self._sweep()
        token = secrets.token_urlsafe(32)
        self._links[token] = _Link(image, deadline.at, job_id)
        return f"{self.public_base_url}/media/{token}.{EXTENSIONS.get(image.mime, 'bin')}"

    async def publish(self, image: PreparedImage, deadline: Deadline) -> str:
        return self.publish_sync(image, deadline)

    def publisher(self, job_id: str) -> Callable[[PreparedImage, Deadline], Awaitable[str]]:
        """`ProviderRequest.publish` for one job: its links die with `revoke(job_id)`."""

        async def publish(image: PreparedImage, deadline: Deadline) -> str:
            return self.publish_sync(image, deadline, job_id)

        return publish

    def revoke(self, job_id: str) -> int:
        """End every link of a job now (its booth is being answered). Returns how many were live."""
        tokens = [t for t, link in self._links.items() if link.job_id == job_id]
        for token in tokens:
            del self._links[token]
        return len(tokens)

    def get(self, name: str) -> PreparedImage | None:
        """The image behind `<token>.<ext>`, or None when unknown, mistyped or expired."""
        token, _, ext = name.partition(".")
        link = self._links.get(token)
        if link is None or time.monotonic() >= link.expires_at:
            return None
        if ext != EXTENSIONS.get(link.image.mime, "bin"):
            return None
        return link.image

    def _sweep(self) -> None:
        now = time.monotonic()
        for token in [t for t, link in self._links.items() if now >= link.expires_at]:
            del self._links[token]

    def __len__(self) -> int:
        self._sweep()
        return len(self._links)
