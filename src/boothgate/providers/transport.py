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
import contextvars
import json
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import httpx

from boothgate import errors
from boothgate.deadline import Deadline
from boothgate.imaging.workers import WorkerLost

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
    """Like `booth_error`, and an answer the provider's parser could not read (see UNREADABLE_ANSWER_ERRORS),
    or image work on it that lost its worker (a crash, the worker's memory ceiling), is the provider's
    failure too: `provider_bad_response`. For exceptions leaving a provider's `run`."""
    mapped = booth_error(exc, label, deadline)
    if mapped is not None:
        return mapped
    if isinstance(exc, WorkerLost):  # the provider's image took its image worker down, or over its memory
        return errors.ProviderFailed(f"{label}'s image could not be processed: {exc}", code="provider_bad_response")
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


# --- answers bounded before they are decoded, redirects that carry nothing (issue 31, classes 1 and 5) ---

# Encodings this transport can inflate step by step with a bound on each step's output. Anything else
# (br, zstd: no bounded step in the standard library) is not asked for and refused when sent anyway.
ACCEPTED_ENCODINGS = "gzip, deflate"
# Output of one inflate step (in a worker thread): small enough that a bomb is stopped within one step
# past the limit, big enough that a legitimate answer needs few steps.
INFLATE_STEP_BYTES = 1 << 20
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Header names that carry credentials (Gemini's `x-goog-api-key`, `Authorization`, fal's `Key ...`).
_CREDENTIAL_WORDS = ("auth", "key", "token", "secret", "cookie", "session", "signature", "password")

_answer_limit: contextvars.ContextVar[int | None] = contextvars.ContextVar("boothgate_answer_limit", default=None)


class AnswerTooLarge(errors.ProviderFailed):
    """A provider's answer passed its size limit (counted after decompression)."""

    code = "provider_answer_too_large"


class RedirectRefused(errors.ProviderFailed):
    """A provider redirected a request that carries credentials or a body to another origin."""

    code = "provider_redirect"


@contextmanager
def answer_limit(max_bytes: int) -> Iterator[None]:
    """Answers of HTTP calls made inside the block are limited to `max_bytes` (e.g. model lists)."""
    token = _answer_limit.set(max_bytes)
    try:
        yield
    finally:
        _answer_limit.reset(token)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def carries_secrets(request: httpx.Request) -> bool:
    """Whether following a redirect of `request` elsewhere would hand over a body or credentials."""
    if request.method not in ("GET", "HEAD") or request.headers.get("content-length", "0") not in ("", "0"):
        return True
    words = [name.lower() for name in request.headers] + [name.lower() for name, _ in request.url.params.multi_items()]
    return any(word in name for name in words for word in _CREDENTIAL_WORDS)


class _Inflater:
    def __init__(self, encoding: str) -> None:
        # wbits 47: gzip or zlib, detected from the header; raw deflate for servers that send it bare.
        self.encoding = encoding
        self._d = zlib.decompressobj(47)
        self._raw_tried = False

    def step(self, data: bytes, room: int) -> tuple[bytes, bool]:
        """Inflate `data` producing at most `room` bytes; the flag says the output went past `room`."""
        try:
            out = self._d.decompress(data, room)
        except zlib.error:
            if self._raw_tried or self.encoding != "deflate":
                raise
            self._raw_tried, self._d = True, zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._d.decompress(data, room)
        return out, bool(self._d.unconsumed_tail)


class _BoundedStream(httpx.AsyncByteStream):
    """The answer's body, counted as it arrives and inflated in worker threads, refused past `limit`."""

    def __init__(self, raw: httpx.AsyncByteStream, encoding: str, limit: int, url: httpx.URL) -> None:
        self.raw, self.limit, self.host = raw, limit, url.host
        self.inflater = _Inflater(encoding) if encoding else None

    def _too_large(self) -> AnswerTooLarge:
        return AnswerTooLarge(
            f"The provider's answer from {self.host} is larger than {self.limit:,} bytes (after decompression)."
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self.raw:
            if self.inflater is None:
                total += len(chunk)
                if total > self.limit:
                    raise self._too_large()
                yield chunk
                continue
            pending = chunk
            while pending:
                try:
                    out, over = await asyncio.to_thread(self.inflater.step, pending, self.limit - total + 1)
                except zlib.error as exc:
                    raise httpx.DecodingError("The compressed answer is corrupt.") from exc
                total += len(out)
                if over or total > self.limit:
                    raise self._too_large()
                pending = b""
                if out:
                    yield out

    async def aclose(self) -> None:
        await self.raw.aclose()


class AnswerGuard(httpx.AsyncBaseTransport):
    """Wraps the HTTP transport every provider call goes through:

    - a redirect of a request that carries a body or credentials to another origin is refused (the
      client never follows it): `RedirectRefused`, a provider failure;
    - the answer's body is counted as it arrives — inflated by this transport, step by bounded step in a
      worker thread, never by the client on the event loop — and refused past its limit (`AnswerTooLarge`).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: Callable[[], int]) -> None:
        self.inner, self.limit = inner, limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = ACCEPTED_ENCODINGS
        response = await self.inner.handle_async_request(request)
        if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
            target = request.url.join(response.headers["location"])
            if _origin(target) != _origin(request.url) and carries_secrets(request):
                await response.aclose()
                raise RedirectRefused(
                    f"The provider at {request.url.host} redirected the call to another address ({target.host}); "
                    "the photo and the key are never sent there."
                )
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding in ("identity",):
            encoding = ""
        if encoding not in ("", "gzip", "x-gzip", "deflate"):
            await response.aclose()
            raise errors.ProviderFailed(
                f"The provider sent an answer in an encoding that was not asked for ({encoding[:20]}).",
                code="provider_bad_response",
            )
        limit = _answer_limit.get() or self.limit()
        declared = response.headers.get("content-length", "")
        if not encoding and declared.isdigit() and int(declared) > limit:
            await response.aclose()
            raise AnswerTooLarge(f"The provider's answer from {request.url.host} is larger than {limit:,} bytes.")
        assert isinstance(response.stream, httpx.AsyncByteStream)
        bounded = _BoundedStream(response.stream, encoding, limit, request.url)
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in (b"content-encoding", b"content-length")]
        return httpx.Response(
            response.status_code, headers=headers, stream=bounded, request=request, extensions=response.extensions
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def sdk_http_client(limit: Callable[[], int], timeout: float) -> httpx.AsyncClient:
    """An HTTP client for an SDK that would otherwise build its own (the `openai` SDK of the OpenAI and DeepSeek
    tabs): its answers pass the same `AnswerGuard` as every other provider call. Its own connection pool,
    closed with the SDK client; same-origin redirects are followed as the SDK's own client does."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=True,
        transport=AnswerGuard(httpx.AsyncHTTPTransport(), limit),
    )
