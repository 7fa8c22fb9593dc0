"""Booth-facing failures: each carries its HTTP status, a stable code and a human message.

The table is `design.md`'s. Every layer raises these; the spine turns them into the JSON answer
`{"error": code, "message": ..., "job_id": ...}` and a trashed original.
"""

from __future__ import annotations


class BoothError(Exception):
    """A failure with a booth-facing status code."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class MalformedRequest(BoothError):
    status, code = 400, "bad_request"


class Unauthorized(BoothError):
    status, code = 401, "unauthorized"


class SlotDisabled(BoothError):
    status, code = 403, "slot_disabled"


class SlotNotFound(BoothError):
    status, code = 404, "slot_not_found"


class TooLarge(BoothError):
    status, code = 413, "too_large"


class UnsupportedImage(BoothError):
    status, code = 415, "unsupported_image"


class CorruptImage(BoothError):
    status, code = 422, "corrupt_image"


class RateLimited(BoothError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, code: str | None = None, wait: float | None = None) -> None:
        super().__init__(message, code=code)
        # The rest the service asked for (Retry-After), when it named one: several keys rest this key for it.
        self.wait = wait


class LockedOut(RateLimited):
    """Too many wrong passwords from one address, counted by every node together (booth/throttle.py)."""


class Cancelled(BoothError):
    """The client API's caller cancelled the job (nginx's 499: the client went away)."""

    status, code = 499, "cancelled"


class ProviderFailed(BoothError):
    status, code = 502, "provider_error"


class ProviderRefused(BoothError):
    """The provider refused the content (safety filters, moderation)."""

    status, code = 502, "provider_refused"


class ProviderNotConfigured(BoothError):
    status, code = 503, "provider_not_configured"


class BudgetSpent(BoothError):
    """The event's budget of paid calls or cost is used up: its slots' fallback serves, else on_failure."""

    status, code = 503, "budget_spent"


class DeadlineReached(BoothError):
    status, code = 504, "deadline"


class StorageFailed(BoothError):
    status, code = 507, "storage_failed"


class StorageUnavailable(BoothError):
    """The shared media bucket (several nodes, issue 27) did not take the photo in time."""

    status, code = 503, "storage_unavailable"
