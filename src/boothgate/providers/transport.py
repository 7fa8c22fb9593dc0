"""Turn what goes wrong on the wire to a provider into booth errors.

A provider talks HTTP to a service that can reset the connection, stall, answer garbage or an HTML
error page. None of that may reach the booth as a 500 or a dropped connection: each becomes a 502
(or 429 / 504) with an operator-facing message. Providers wrap their calls in `provider_call`; the
spine applies `booth_error` to anything a provider lets escape, as a safety net.

Messages never quote the exception text or the URL: an httpx error message carries the request URL,
and some APIs take their key in the query string.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from boothgate import errors
from boothgate.deadline import Deadline

# A timeout this close to the deadline is the deadline's doing, not the provider's.
DEADLINE_SLACK_SECONDS = 0.1


def booth_error(exc: BaseException, label: str, deadline: Deadline | None = None) -> errors.BoothError | None:
    """The booth error for a transport-level failure talking to provider `label`, or None when `exc`
    is not one (a bug in our own code stays a bug: the spine answers it 500 and logs it)."""
    if isinstance(exc, errors.BoothError):
        return exc
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
        if deadline is not None and deadline.remaining() <= DEADLINE_SLACK_SECONDS:
            return errors.DeadlineReached(f"{label} did not answer before the deadline.")
        return errors.ProviderFailed(f"{label} did not answer in time ({type(exc).__name__}).", code="provider_timeout")
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_error(exc.response.status_code, label)
    if isinstance(exc, httpx.TransportError | ConnectionError | asyncio.IncompleteReadError):
        return errors.ProviderFailed(
            f"{label} could not be reached or dropped the connection ({type(exc).__name__}).",
            code="provider_unreachable",
        )
    if isinstance(exc, httpx.DecodingError | httpx.TooManyRedirects | json.JSONDecodeError | UnicodeDecodeError):
        return errors.ProviderFailed(
            f"{label} sent an answer that cannot be read ({type(exc).__name__}).", code="provider_bad_response"
        )
    return None


# What an SDK raises when the service's answer has the wrong shape: base64 that is not base64, a text where a
# number belongs, an unknown enum value, `parts` that is not a list, nesting deeper than the parser goes.
# Inside a provider's `run` these are the provider's answer failing to parse, not our bug: 502, and the
# fallback serves. Errors of other types (RuntimeError, AssertionError, ...) stay bugs: 500, logged.
UNREADABLE_ANSWER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # pydantic's ValidationError, binascii.Error, json errors, UnicodeDecodeError, unknown enums
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    OverflowError,
)


def answer_error(exc: BaseException, label: str, deadline: Deadline | None = None) -> errors.BoothError | None:
    """Like `booth_error`, and an answer the provider's parser could not read (see UNREADABLE_ANSWER_ERRORS)
    is the provider's failure too: `provider_bad_response`. For exceptions leaving a provider's `run`."""
    mapped = booth_error(exc, label, deadline)
    if mapped is not None:
        return mapped
    if isinstance(exc, UNREADABLE_ANSWER_ERRORS):
        return errors.ProviderFailed(
            f"{label} sent an answer that cannot be read ({type(exc).__name__}).", code="provider_bad_response"
        )
    return None


def _status_error(status: int, label: str) -> errors.BoothError:
    if status == 429:
        return errors.RateLimited(f"{label} is rate limiting requests (HTTP 429).")
    if status in (401, 403):
        return errors.ProviderFailed(
            f"{label} refused the credentials (HTTP {status}): check its API key on the settings page.",
            code="provider_auth",
        )
    return errors.ProviderFailed(f"{label} answered HTTP {status}.", code="provider_error")


@contextmanager
def provider_call(label: str, deadline: Deadline | None = None) -> Iterator[None]:
    """`with provider_call("Gemini", request.deadline): ...` — transport failures inside the block
    leave it as booth errors (502 / 429 / 504); anything else passes through untouched."""
    try:
        yield
    except errors.BoothError:
        raise
    except Exception as exc:
        mapped = booth_error(exc, label, deadline)
        if mapped is None:
            raise
        raise mapped from exc
