"""Receiving a booth's upload: the throttle and size cap, the body read oldest upload first (turns.py)
with the photo decoded while it arrives (early.py), and the booth's fields kept as job metadata.

One step of the spine (spine.py `_receive`); it knows nothing of slots or providers' work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from boothgate import errors
from boothgate.booth.booth_job import BoothJob, BoothRequest
from boothgate.booth.early import watch_upload
from boothgate.booth.failwell import SECRET_FIELDS
from boothgate.booth.multipart import Limits, Upload, read_upload
from boothgate.booth.throttle import Throttle
from boothgate.booth.turns import Turns
from boothgate.imaging.pool import Imaging
from boothgate.link_secrets import public_query, query_password
from boothgate.operator.credentials import Credentials
from boothgate.providers.registry import Registry


class Receiving:
    def __init__(self, imaging: Imaging, registry: Registry, credentials: Credentials, throttle: Throttle) -> None:
        self.imaging, self.registry, self.credentials, self.throttle = imaging, registry, credentials, throttle
        # Arrived bytes are parsed oldest upload first; no new upload starts while every image worker
        # already has a photo waiting for it (booth/turns.py).
        workers = imaging.workers
        self.turns = Turns(hold=lambda: workers.queued >= workers.workers)

    async def receive(self, job: BoothJob) -> Upload:
        """The upload read to the incoming file (oldest first, decoded early when the network sets the
        pace), its fields kept as metadata; the throttle and the size cap first."""
        settings = job.settings
        request = job.request
        if self.throttle.retry_after(request.client) is not None and request.source == "booth":
            job.stage = "admit"
            raise errors.RateLimited("Too many wrong passwords from this address; wait and try again.")
        if request.content_length is not None and request.content_length > settings.max_upload_bytes:
            raise errors.TooLarge(
                f"The upload is {request.content_length:,} bytes; at most {settings.max_upload_bytes:,} are accepted."
            )
        limits = Limits(settings.max_upload_bytes, settings.upload_idle_timeout_seconds)
        job.upload = Upload()  # filled while reading: a failed upload's fields are still known
        turn = self.turns.turn(request.received_at)
        job.early = watch_upload(
            self.imaging,
            self.registry,
            request.provider,
            request.content_length,
            self.proves_password(request),
            job.incoming,
            job.deadline.at,
            turn,
        )
        upload = await read_upload(
            request.content_type,
            request.body,
            job.incoming,
            limits,
            turn,
            job.proof,
            job.upload,
            on_progress=job.early.progress,
        )
        await job.early.complete(upload.size)
        job.record.meta = metadata(upload, request.query)
        job.record.photo_bytes = upload.size
        job.record.photo_sha256 = upload.sha256 or None
        return upload

    def proves_password(self, request: BoothRequest) -> Callable[[Upload], bool]:
        """Whether an upload still arriving has given the upload password (field, header or link)."""

        def proves(upload: Upload) -> bool:
            if request.source != "booth":
                return True
            given = upload.form_password or request.header_password or query_password(request.query)
            return self.credentials.check_upload(given)

        return proves


def metadata(upload: Upload, query: dict[str, str]) -> dict[str, Any]:
    """The booth's text fields and the link's query, kept as job metadata — never a password or key."""
    meta: dict[str, Any] = {k: v for k, v in upload.fields.items() if k.lower() not in SECRET_FIELDS}
    if upload.filename:
        meta["filename"] = upload.filename
    if public := public_query(query):
        meta["query"] = public
    return meta
