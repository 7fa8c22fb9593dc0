"""The OpenAI tab: face swap, background and prompt through GPT Image's `images.edit`.

The photo (and the slot's reference for face swap and background) go out as input images of one
multipart `POST /images/edits`; the answer is one base64 image. The SDK retries nothing
(`max_retries=0`): this module's loop retries 5xx and connection failures after a growing pause, and a
429 after the `retry-after` it asks for, only while another attempt can still finish before the
deadline. With several keys (issue 28) a 429 rests the key for its `retry-after` and the photo goes on at
once with another key, and a key refused (401/403, no quota) is taken out and flagged by its masked name.
Every call gets the time left as its timeout and runs under an asyncio timeout as well,
because httpx timeouts are per read. Request details and error sorting live in `openai_wire.py`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import Any, ClassVar, Literal

import httpx
import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field, field_validator

from boothgate.deadline import Deadline
from boothgate.errors import DeadlineReached, ProviderFailed, ProviderNotConfigured, RateLimited
from boothgate.prices import by_prefix, openai_price, openai_price_map
from boothgate.providers import openai_wire as wire
from boothgate.providers import transport
from boothgate.providers.base import (
    CheckResult,
    Kind,
    ModelInfo,
    Provider,
    ProviderContext,
    ProviderRequest,
    ProviderResult,
)
from boothgate.providers.key_turn import KeyTurn, check_every_key
from boothgate.providers.keys import KeyState

Quality = Literal["low", "medium", "high"]
Size = Literal["match_photo", "auto", "1024x1024", "1536x1024", "1024x1536"]
MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
# Fields a model may refuse with a 400 naming them: the call is repeated once without, and the refusal is
# remembered in the database so later calls (and later starts) leave the field out from the start.
DROPPABLE_FIELDS = frozenset({"input_fidelity", "background"})


class OpenAIOptions(BaseModel):
    """Slot options of the OpenAI tab."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="",
        description="OpenAI image model for this slot. Empty: the default model from the settings page.",
    )
    quality: Quality = Field("medium", description="low is fastest and cheapest; high looks best but can take 30–60 s.")
    output_format: Literal["jpeg", "png"] = Field("jpeg", description="Format OpenAI draws the result in.")
    size: Size = Field(
        "match_photo",
        description="match_photo: the photo's shape (exact on models that take free sizes, else landscape, "
        "portrait or square). auto: OpenAI decides.",
    )
    transparent_background: bool = Field(
        False, description="PNG only: ask for a transparent background (a cut-out instead of a scene)."
    )

    @field_validator("model")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class OpenAIProvider(Provider):
    name = "openai"
    label = "OpenAI"
    kinds = frozenset(Kind)
    # GPT Image reads inputs at about this detail; more pixels only add upload time.
    max_input_pixels = 2_500_000
    # images.edit takes up to 16 images (OpenAI's API reference): the photo + 15.
    max_references = 15
    key_setting = "openai_api_key"
    model_setting = "openai_model"
    Options = OpenAIOptions

    min_attempt_seconds: ClassVar[float] = 1.0
    first_backoff_seconds: ClassVar[float] = 0.5
    max_backoff_seconds: ClassVar[float] = 4.0
    check_seconds: ClassVar[float] = 10.0

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        # One SDK client per key (the check tries every key: issue 28).
        self._sdks: dict[str, AsyncOpenAI] = {}
        self._building = asyncio.Lock()

    # --- connection ---------------------------------------------------------------------------
    async def _client(self, key: str) -> AsyncOpenAI:
        # Built once per provider: a settings change (key, base URL) builds a new provider. Built in a thread:
        # the SDK's HTTP client loads the system's CA certificates (30-70 ms of CPU that would hold up every
        # booth on the event loop).
        async with self._building:
            if key not in self._sdks:
                self._sdks[key] = await asyncio.to_thread(self._build_sdk, key)
        return self._sdks[key]

    def _build_sdk(self, key: str) -> AsyncOpenAI:
        settings = self.settings
        return AsyncOpenAI(
            api_key=key,
            base_url=settings.openai_base_url.strip().rstrip("/"),
            max_retries=0,
            timeout=settings.deadline_seconds,
            # The SDK's own client would be outside the answer bound (issue 31, class 1): ours counts the answer
            # as it arrives, inflated step by step off the event loop, and refuses redirects elsewhere.
            http_client=transport.sdk_http_client(  # type: ignore[arg-type]  # the SDK takes an httpx client too
                lambda: settings.provider_answer_max_bytes, settings.deadline_seconds
            ),
        )

    async def aclose(self) -> None:
        sdks, self._sdks = list(self._sdks.values()), {}
        for sdk in sdks:
            await sdk.close()

    def _key(self) -> str:
        key = self.api_key()
        if key is None:
            raise ProviderNotConfigured(self.problem() or "The OpenAI API key is not set.")
        return key

    # --- model list and check -----------------------------------------------------------------
    async def list_models(self) -> list[ModelInfo] | None:
        """`GET /models`: everything the key may use, image models first (the slot editor offers them)."""
        client = await self._client(self._key())
        async with asyncio.timeout(self.check_seconds):
            page = await client.models.list(timeout=self.check_seconds)
            ids = [model.id async for model in page]
        ids.sort(key=lambda i: ("image" not in i, i))
        return [ModelInfo(i) for i in ids]

    async def check(self) -> CheckResult:
        """`GET /models/{default model}`: proves the key, the base URL and the model in one free call."""
        problem = self.problem()
        if problem:
            return CheckResult(False, problem)
        return await check_every_key(self.key_pool(), self._check_key)

    async def _check_key(self, key: str) -> CheckResult:
        model = self.settings.openai_model
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.check_seconds):
                await (await self._client(key)).models.retrieve(model, timeout=self.check_seconds)
        except openai.APIStatusError as exc:
            sorted_ = wire.sort_status_error(exc, model, False, key)
            message = sorted_.error.message if sorted_.error else f"OpenAI answered {sorted_.note}."
            refused = sorted_.error is not None and sorted_.error.code in ("provider_auth", "provider_billing")
            return CheckResult(False, message, _since(started), key_refused=refused)
        except (openai.APIConnectionError, TimeoutError) as exc:
            return CheckResult(
                False, f"OpenAI could not be reached ({type(exc).__name__}): check {wire.BASE_URL_SETTING}.",
                _since(started),
            )  # fmt: skip
        self.last_error = None
        return CheckResult(True, f"OpenAI accepts the key and offers {model}.", _since(started))

    # --- one job ------------------------------------------------------------------------------
    def _arguments(self, request: ProviderRequest, options: OpenAIOptions, model: str) -> dict[str, Any]:
        settings = self.settings
        photo = request.photo
        size = wire.choose_size(
            options.size, model, photo.width, photo.height, wire.model_set(settings.openai_free_size_models)
        )
        arguments: dict[str, Any] = {
            "model": model,
            "image": wire.input_files(
                photo, request.reference, request.references
            ),  # a prompt slot's reference is a style example
            "prompt": wire.instruction_text(request.kind, request.prompt, request.instruction),
            "quality": options.quality,
            "output_format": options.output_format,
            "size": size,
            "n": 1,
        }
        # Faces must stay the guests' own: ask for high input fidelity where the model takes it.
        if model in wire.model_set(settings.openai_input_fidelity_models):
            arguments["input_fidelity"] = "high"
        if options.output_format == "png" and options.transparent_background:
            arguments["background"] = "transparent"
        for name in self.context.refusals.fields(self.name, model):  # refused before: not asked again
            arguments.pop(name, None)
        return arguments

    async def _drop_refused(self, exc: openai.APIStatusError, arguments: dict[str, Any], notes: dict[str, Any]) -> bool:
        """A 400 naming a field we sent that the model does not take: remember it, send the call without it."""
        param = getattr(exc, "param", None)
        if exc.status_code != 400 or not isinstance(param, str) or param not in DROPPABLE_FIELDS:
            return False
        if param not in arguments:
            return False
        arguments.pop(param)
        await self.context.refusals.remember(
            self.name, str(arguments["model"]), param, str(getattr(exc, "message", ""))
        )
        notes.setdefault("dropped_fields", []).append(param)
        return True

    async def run(self, request: ProviderRequest) -> ProviderResult:
        self._key()  # not configured: 503 before anything is sent
        options = request.options
        if not isinstance(options, OpenAIOptions):
            options = OpenAIOptions.model_validate(options.model_dump(include=set(OpenAIOptions.model_fields)))
        model = options.model or self.settings.openai_model
        arguments = self._arguments(request, options, model)
        notes = request.notes
        notes.update(
            model=model,
            quality=options.quality,
            size=arguments["size"],
            attempts=0,
            problems=[],
            cost_usd=0.0,
        )
        # Several keys (issue 28): a key answering 429 rests while the photo goes on at once with another; a
        # key refused (401/403, no quota) is taken out and flagged. With one key, the loop below as before.
        turn = KeyTurn(self.key_pool(), request.deadline, notes, self.label)
        try:
            result = await self._run_with(turn, arguments, options, model, request)
            turn.succeeded()
            return result
        finally:
            turn.release()

    async def _run_with(
        self, turn: KeyTurn, arguments: dict[str, Any], options: OpenAIOptions, model: str, request: ProviderRequest
    ) -> ProviderResult:
        notes = request.notes
        key = (await turn.take()).key
        client = await self._client(key)
        backoff = self.first_backoff_seconds
        while True:
            self._check_can_try(request.deadline, notes)
            notes["attempts"] += 1
            try:
                response = await self._attempt(client, arguments, request.deadline)
            except openai.APIStatusError as exc:
                if await self._drop_refused(exc, arguments, notes):
                    notes["problems"].append(f"400 {exc.param} refused: retried without it")
                    continue
                verdict = wire.sort_status_error(exc, model, bool(options.model), key)
                notes["problems"].append(verdict.note)
                other = self._hand_over(turn, exc, verdict)
                if other is not None:
                    key, client = other.key, await self._client(other.key)
                    continue
                if verdict.error is not None:
                    if verdict.error.code in wire.OPERATOR_CODES:
                        self.last_error = verdict.error.message
                    raise verdict.error from None
                if verdict.retry_after is None:  # 429 without a wait to honour
                    raise RateLimited("OpenAI is rate limiting requests (429) and names no time to wait.") from None
                wait = max(verdict.retry_after, backoff if exc.status_code != 429 else 0.0)
                if not request.deadline.fits(wait + self.min_attempt_seconds):
                    if exc.status_code == 429:
                        raise RateLimited(
                            f"OpenAI is rate limiting requests (429); it asks to wait {verdict.retry_after:g} s, "
                            "more than the time left for this photo."
                        ) from None
                    raise self._out_of_time(notes) from None
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, self.max_backoff_seconds)
                continue
            except (openai.APITimeoutError, TimeoutError) as exc:
                notes["problems"].append("no answer in time")
                raise self._out_of_time(notes) from exc
            except openai.APIConnectionError as exc:
                if isinstance(exc.__cause__, httpx.DecodingError):  # compressed data that does not inflate
                    raise ProviderFailed(
                        "OpenAI sent an answer that cannot be read (corrupt compression).", code="provider_bad_response"
                    ) from exc
                notes["problems"].append(f"connection: {type(exc.__cause__ or exc).__name__}")
                if not request.deadline.fits(backoff + self.min_attempt_seconds):
                    raise self._out_of_time(notes) from exc
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
                continue
            return self._success(response, options, notes)

    @staticmethod
    def _hand_over(turn: KeyTurn, exc: openai.APIStatusError, verdict: wire.Sorted) -> KeyState | None:
        """With several keys: a 429 rate limit rests this key for its retry-after, a key refused for
        authentication or billing is taken out, and the call goes on at once with another key."""
        if verdict.error is not None:
            if verdict.error.code in ("provider_auth", "provider_billing"):
                return turn.flag_and_switch(verdict.error)
            return None
        if exc.status_code == 429:
            return turn.rest_and_switch(verdict.retry_after)
        return None

    async def _attempt(self, client: AsyncOpenAI, arguments: dict[str, Any], deadline: Deadline) -> object:
        # The SDK's timeout applies per connect/read step; the deadline bounds the whole call.
        async with deadline.timeout():
            return await client.images.edit(**arguments, timeout=max(0.01, deadline.remaining()))

    def _success(self, response: object, options: OpenAIOptions, notes: dict[str, Any]) -> ProviderResult:
        items = getattr(response, "data", None) or []
        encoded = getattr(items[0], "b64_json", None) if items else None
        if not encoded:
            raise ProviderFailed("OpenAI answered without an image.", code="provider_no_image")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProviderFailed("OpenAI's image could not be decoded.", code="provider_bad_image") from exc
        usage = getattr(response, "usage", None)
        if usage is not None:
            notes["usage"] = {
                k: v for k, v in usage.model_dump().items() if isinstance(v, int) and not isinstance(v, bool)
            }
        fmt = getattr(response, "output_format", None) or options.output_format
        # Priced as OpenAI bills it: the quality and size it says it drew (the request's when it does not say).
        quality = str(getattr(response, "quality", None) or "")
        quality = quality if quality in ("low", "medium", "high") else options.quality
        size = str(getattr(response, "size", None) or notes.get("size") or "")
        notes["cost_usd"] = round(self.price_usd(str(notes["model"]), quality, size), 6)
        self.last_error = None
        return ProviderResult(data, MIME.get(str(fmt), "image/png"), dict(notes))

    def price_usd(self, model: str, quality: str, size: str | None) -> float:
        """The estimated cost of one image: the price table by model, quality and size, else the
        per-quality setting."""
        entry = by_prefix(openai_price_map(self.settings.openai_prices_usd), model)
        price = openai_price(entry, quality, size)
        if price is not None:
            return price
        prices = {
            "low": self.settings.openai_price_low_usd,
            "medium": self.settings.openai_price_medium_usd,
            "high": self.settings.openai_price_high_usd,
        }
        return prices.get(quality, self.settings.openai_price_high_usd)

    def estimated_cost_usd(self, options: dict[str, Any]) -> float | None:
        model = str(options.get("model") or "").strip() or self.settings.openai_model
        size = str(options.get("size") or "")
        return self.price_usd(model, str(options.get("quality") or "medium"), size if "x" in size else None)

    def _check_can_try(self, deadline: Deadline, notes: dict[str, Any]) -> None:
        if not deadline.fits(self.min_attempt_seconds):
            raise self._out_of_time(notes)

    @staticmethod
    def _out_of_time(notes: dict[str, Any]) -> DeadlineReached | ProviderFailed:
        """No time for another attempt: a provider failure (502) when OpenAI kept failing, the deadline
        (504) when it was merely slow."""
        problems = notes.get("problems", [])
        detail = ", ".join(problems) or "no answer"
        if problems and problems[-1] != "no answer in time":
            return ProviderFailed(
                f"OpenAI kept failing and there is no time left for another try ({detail}).",
                code="provider_unavailable",
            )
        return DeadlineReached(f"No image from OpenAI before the deadline ({detail}).")


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


PROVIDER = OpenAIProvider
