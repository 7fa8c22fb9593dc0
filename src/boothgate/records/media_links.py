"""Short-lived public links to prepared images, for providers that download their inputs (Turbotext).

A link is an unguessable token, serves exactly the bytes it was made for, and answers 404 once the
job's deadline has passed — or earlier, the moment the job's booth is answered (`revoke`): a provider
has no business downloading a guest's photo after the job is over. Links live in memory: they are
useless after a restart anyway, because the job that made them is gone.

With a shared media bucket (several nodes behind one address, issue 27) the provider's download may reach
another node, so a link's bytes also go to the bucket (`links/<token>.<ext>`, with their wall-clock expiry
in front) before its address is handed out; a node that does not know a token reads it from there, and
`revoke` deletes it.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from boothgate.deadline import Deadline
from boothgate.providers.base import PreparedImage
from boothgate.storage.media import MediaStore
from boothgate.storage.objects import BucketUnavailable

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
MIMES = {ext: mime for mime, ext in EXTENSIONS.items()}
# What a shared link's name may be: a token_urlsafe(32) and a known extension (nothing else reaches the bucket).
SHARED_NAME = re.compile(r"([A-Za-z0-9_-]{43})\.(jpg|png|webp)")


@dataclass(frozen=True)
class _Link:
    image: PreparedImage
    expires_at: float
    job_id: str | None = None


class MediaLinks:
    def __init__(self, public_base_url: str, media: MediaStore | None = None) -> None:
        self.public_base_url = public_base_url.rstrip("/")
        self._links: dict[str, _Link] = {}
        self.media = media if media is not None and media.bucket is not None else None

    def publish_sync(self, image: PreparedImage, deadline: Deadline, job_id: str | None = None) -> str:
        self._sweep()
        token = secrets.token_urlsafe(32)
        self._links[token] = _Link(image, deadline.at, job_id)
        return f"{self.public_base_url}/media/{token}.{EXTENSIONS.get(image.mime, 'bin')}"

    async def publish(self, image: PreparedImage, deadline: Deadline) -> str:
        return await self._shared(self.publish_sync(image, deadline), image, deadline)

    def publisher(self, job_id: str) -> Callable[[PreparedImage, Deadline], Awaitable[str]]:
        """`ProviderRequest.publish` for one job: its links die with `revoke(job_id)`."""

        async def publish(image: PreparedImage, deadline: Deadline) -> str:
            return await self._shared(self.publish_sync(image, deadline, job_id), image, deadline)

        return publish

    async def _shared(self, url: str, image: PreparedImage, deadline: Deadline) -> str:
        """With a shared bucket: the link's bytes there before its address leaves (any node serves it)."""
        if self.media is None or self.media.bucket is None:
            return url
        expires = time.time() + deadline.remaining()
        try:
            await self.media.bucket.aput_bytes(_key(url), b"%.3f\n" % expires + image.data)
        except BucketUnavailable:
            pass  # this node still serves it; a download reaching another node gets 404 (the provider fails)
        return url

    def revoke(self, job_id: str) -> int:
        """End every link of a job now (its booth is being answered). Returns how many were live."""
        tokens = [t for t, link in self._links.items() if link.job_id == job_id]
        for token in tokens:
            self._forget(token)
        return len(tokens)

    def _forget(self, token: str) -> None:
        link = self._links.pop(token)
        if self.media is not None:  # the bucket's copy too, in the background
            self.media.delete(f"links/{token}.{EXTENSIONS.get(link.image.mime, 'bin')}")

    async def fetch(self, name: str) -> PreparedImage | None:
        """A link another node made (shared bucket), or None when unknown there, expired or malformed."""
        match = SHARED_NAME.fullmatch(name)
        if self.media is None or self.media.bucket is None or match is None:
            return None
        try:
            data = await self.media.bucket.aget_bytes(f"links/{name}")
        except BucketUnavailable:
            return None
        if data is None:
            return None
        head, _, body = data.partition(b"\n")
        try:
            expired = time.time() >= float(head)
        except ValueError:
            return None
        return None if expired else PreparedImage(body, MIMES[match.group(2)], 0, 0)

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
            self._forget(token)

    def __len__(self) -> int:
        self._sweep()
        return len(self._links)


def _key(url: str) -> str:
    return "links/" + url.rsplit("/", 1)[1]
