"""The Gemini tab: face swap, background and prompt through the `google-genai` SDK.

One job is a loop of attempts, each a single `generateContent` call whose timeout is the time left
before the deadline. Between attempts: "no image" answers are tried again at once, 5xx after a growing
pause, 429 after the `retryDelay` Gemini asks for when that still fits; refusals and operator problems
(key, billing, model) end the job at once. Request building and answer reading live in
`gemini_wire.py`, error sorting and the job's final error in `gemini_errors.py`, the slot options in
`gemini_options.py`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.genai.client import DebugConfig

from boothgate.deadline import Deadline
from boothgate.errors import (
    ProviderFailed,
    ProviderNotConfigured,
    ProviderRefused,
    RateLimited,
)
from boothgate.prices import by_prefix, prefix_map, sized_price
from boothgate.providers import gemini_errors as errs
from boothgate.providers import gemini_wire as wire
from boothgate.providers.base import Kind, Provider, ProviderContext, ProviderRequest, ProviderResult
from boothgate.providers.gemini_live import GeminiLive
from boothgate.providers.gemini_options import GeminiOptions
from boothgate.providers.key_turn import KeyTurn
from boothgate.providers.keys import KeyState


@dataclass(frozen=True)
class _Call:
    """Everything one job sends, built once and reused by every attempt."""

    model: str
    model_from_slot: bool
    contents: list[types.Content]
    image: wire.ImageChoice


class GeminiProvider(GeminiLive, Provider):
    name = "gemini"
    label = "Gemini"
    kinds = frozenset(Kind)
    # Enough detail for 2K results; more pixels add upload time but little the model uses.
    max_input_pixels = 3_000_000
    # Gemini 3 image models take up to 14 input images (Google's image-generation guide): the photo + 13.
    max_references = 13
    key_setting = "gemini_api_key"
    model_setting = "gemini_model"
    Options = GeminiOptions

    # An attempt started with less time left than this cannot produce an image; stop instead.
    min_attempt_seconds: ClassVar[float] = 1.0
    first_backoff_seconds: ClassVar[float] = 0.5
    max_backoff_seconds: ClassVar[float] = 4.0
    # "No image" answers come back in 1–2 s; past this many the model is not going to draw this one,
    # and each answer costs input tokens.
    max_empty_answers: ClassVar[int] = 10

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        # One SDK client per key (several keys: issue 28), rebuilt when the base URL changes.
        self._sdks: dict[str, genai.Client] = {}
        self._sdk_base: str | None = None
        self._building = asyncio.Lock()

    # --- connection ---------------------------------------------------------------------------

    async def _client(self, key: str) -> genai.Client:
        """The SDK client for the current key and base URL, built once, in a thread: construction costs
        40-60 ms of CPU (its own HTTP clients load the CA certificates), which would hold up every booth on
        the event loop.

        Everything is explicit so the environment cannot redirect it: `vertexai=False` beats
        GOOGLE_GENAI_USE_VERTEXAI, the key beats GOOGLE_API_KEY/GEMINI_API_KEY, the base URL beats
        GOOGLE_GEMINI_BASE_URL, `api_version` beats GOOGLE_GENAI_API_VERSION, and an empty DebugConfig
        beats GOOGLE_GENAI_CLIENT_MODE (replay). Requests go through the shared httpx client, and with
        no `retry_options` the SDK makes exactly one HTTP call per `generate_content`.
        """
        base_url = self.settings.gemini_base_url.strip()
        async with self._building:
            if self._sdk_base != base_url:
                for old in self._sdks.values():
                    old.close()
                self._sdks, self._sdk_base = {}, base_url
            if key not in self._sdks:
                self._sdks[key] = await asyncio.to_thread(
                    genai.Client,
                    vertexai=False,
                    api_key=key,
                    debug_config=DebugConfig(client_mode=None, replays_directory=None, replay_id=None),
                    http_options=types.HttpOptions(
                        base_url=base_url, api_version="v1beta", httpx_async_client=self.context.http
                    ),
                )
        return self._sdks[key]

    @property
    def refused_fields(self) -> dict[str, set[str]]:
        """Fields each model refused (from the database-backed memory; kept for callers of the old attribute)."""
        out: dict[str, set[str]] = {}
        for r in self.context.refusals.listing():
            if r.provider == self.name:
                out.setdefault(r.model, set()).add(r.field)
        return out

    async def aclose(self) -> None:
        for sdk in self._sdks.values():
            sdk.close()  # the SDK's own sync client; the shared async client is closed elsewhere
        self._sdks = {}

    # --- one job ------------------------------------------------------------------------------

    def _prepare(self, request: ProviderRequest) -> _Call:
        options = request.options
        if not isinstance(options, GeminiOptions):
            options = GeminiOptions.model_validate(options.model_dump())
        model = options.model or self.settings.gemini_model
        templates = {
            Kind.face_swap: self.settings.gemini_template_face_swap,
            Kind.background: self.settings.gemini_template_background,
            Kind.prompt: self.settings.gemini_template_prompt,
        }
        text = wire.instruction_text(request.kind, request.prompt, templates, request.instruction)
        sizes = wire.sizes_for(model, prefix_map(self.settings.gemini_image_sizes, list))
        refused = self.context.refusals.fields(self.name, model)
        return _Call(
            model=model,
            model_from_slot=bool(options.model),
            contents=wire.build_contents(request.photo, request.reference, text, request.references),
            image=wire.choose_image(
                model, request.photo, options.aspect_ratio, options.image_size, sizes, refused, request.result_aspect
            ),
        )

    async def run(self, request: ProviderRequest) -> ProviderResult:
        if not self.api_keys():
            raise ProviderNotConfigured(self.problem() or "Gemini API key is not set.")
        call = self._prepare(request)
        notes = request.notes
        notes.update(
            model=call.model,
            attempts=0,
            usage={},
            cost_usd=0.0,
            aspect_ratio=call.image.aspect_ratio,
            image_size=call.image.image_size,
            problems=[],
        )
        keys = KeyTurn(self.key_pool(), request.deadline, notes, self.label)
        try:
            return await self._run_with(keys, call, request, notes)
        finally:
            keys.release()

    async def _run_with(
        self, keys: KeyTurn, call: _Call, request: ProviderRequest, notes: dict[str, Any]
    ) -> ProviderResult:
        state = await keys.take()
        client = await self._client(state.key)
        backoff = self.first_backoff_seconds
        empty_answers = 0
        while True:
            self._check_can_try(request.deadline, notes)
            notes["attempts"] += 1
            try:
                answer = await self._attempt(client, call, request.deadline, notes)
            except genai_errors.APIError as exc:
                notes["problems"].append(errs.describe(exc))
                dropped = await self._drop_refused_field(exc, call, notes)
                if dropped is not None:
                    call = dropped  # the same call once more without the field, at once
                    continue
                other = self._hand_over(keys, exc, call)  # several keys: a resting or refused key hands over
                if other is not None:
                    state, client = other, await self._client(other.key)
                    continue
                backoff = await self._after_api_error(exc, call, request.deadline, notes, backoff)
                continue
            except (TimeoutError, httpx.TimeoutException) as exc:
                notes["problems"].append("no answer in time")
                raise errs.out_of_time(notes) from exc
            except (httpx.TransportError, genai_errors.UnknownApiResponseError) as exc:
                notes["problems"].append(f"connection: {type(exc).__name__}")
                await self._pause(backoff, request.deadline, notes)
                backoff = min(backoff * 2, self.max_backoff_seconds)
                continue
            if answer.data is not None:
                keys.succeeded()
                return self._success(answer, notes)
            if answer.account_blocked is not None:
                self.last_error = answer.account_blocked
                raise ProviderFailed(answer.account_blocked, code="provider_account")
            if answer.refusal is not None:
                raise ProviderRefused(answer.refusal)
            notes["problems"].append(answer.missing or "no image")
            empty_answers += 1
            # Out of tries or out of time, an answer without an image stays "no image" (not "kept failing"):
            # the booth's code must not depend on how fast the machine was.
            if empty_answers >= self.max_empty_answers or not request.deadline.fits(self.min_attempt_seconds):
                raise ProviderFailed(
                    f"Gemini answered without an image ({empty_answers} of {notes['attempts']} attempts: "
                    f"{errs.summary(notes)}).",
                    code="provider_no_image",
                )

    can_generate = True

    def generate_cost_usd(self) -> float | None:
        return self.price_usd(self.settings.gemini_model)

    async def generate(self, prompt: str, deadline: Deadline) -> ProviderResult:
        """A background or template image from a prompt alone, for a slot's reference (the operator pays)."""
        if not self.api_keys():
            raise ProviderNotConfigured(self.problem() or "Gemini API key is not set.")
        model = self.settings.gemini_model
        contents = [types.Content(role="user", parts=[types.Part.from_text(text=prompt)])]
        call = _Call(model, False, contents, wire.ImageChoice(None, None))
        notes: dict[str, Any] = {"model": model, "attempts": 0, "usage": {}, "problems": [], "image_size": None}
        keys = KeyTurn(self.key_pool(), deadline, notes, self.label)
        try:
            state = await keys.take()
            client = await self._client(state.key)
            while True:
                self._check_can_try(deadline, notes)
                notes["attempts"] += 1
                try:
                    answer = await self._attempt(client, call, deadline, notes)
                except genai_errors.APIError as exc:
                    notes["problems"].append(errs.describe(exc))
                    other = self._hand_over(keys, exc, call)
                    if other is not None:
                        client = await self._client(other.key)
                        continue
                    raise errs.fatal_error(exc, model, False) from exc
                if answer.data is not None:
                    keys.succeeded()
                    return self._success(answer, notes)
                if answer.refusal is not None:
                    raise ProviderRefused(answer.refusal)
                notes["problems"].append(answer.missing or "no image")
                if notes["attempts"] >= 3:
                    raise ProviderFailed(f"Gemini drew no image for this prompt ({errs.summary(notes)}).")
        finally:
            keys.release()

    @staticmethod
    def _hand_over(keys: KeyTurn, exc: genai_errors.APIError, call: _Call) -> KeyState | None:
        """With several keys: a 429 rests this key, a refused key (bad, unauthenticated, no billing) is taken
        out, and the call goes on at once with another key. None: carry on as with one key."""
        if exc.code == 429 and not errs.is_free_tier(exc):
            return keys.rest_and_switch(errs.retry_delay_seconds(exc))
        if errs.is_free_tier(exc) or errs.is_bad_key(exc) or (exc.code == 400 and exc.status == "FAILED_PRECONDITION"):
            return keys.flag_and_switch(errs.fatal_error(exc, call.model, call.model_from_slot))
        return None

    async def _attempt(
        self, client: genai.Client, call: _Call, deadline: Deadline, notes: dict[str, Any]
    ) -> wire.Answer:
        config = wire.build_config(call.image, deadline.remaining())
        # The SDK's timeout applies per connect/read step; the deadline bounds the whole call.
        async with deadline.timeout():
            response = await client.aio.models.generate_content(model=call.model, contents=call.contents, config=config)
        wire.add_usage(notes["usage"], response)
        return wire.read_answer(response)

    async def _drop_refused_field(self, exc: genai_errors.APIError, call: _Call, notes: dict[str, Any]) -> _Call | None:
        """A 400 naming imageSize / aspectRatio: remember (in the database) that the model does not take it and
        return the call without it (once per field: a second refusal of the same field is an ordinary failure)."""
        field_name = errs.refused_field(exc)
        sent = call.image.image_size if field_name == "imageSize" else call.image.aspect_ratio
        if field_name is None or sent is None:
            return None
        await self.context.refusals.remember(self.name, call.model, field_name, exc.message or "")
        notes.setdefault("dropped_fields", []).append(field_name)
        notes["problems"][-1] += f" ({field_name} refused: retried without it)"
        if field_name == "imageSize":
            notes["image_size"] = None
        else:
            notes["aspect_ratio"] = None
        return _Call(call.model, call.model_from_slot, call.contents, call.image.without(field_name))

    def price_usd(self, model: str, image_size: str | None = None) -> float:
        """The estimated cost of one image from `model` at `image_size` (1K when none was sent): the price
        table, else the general setting."""
        entry = by_prefix(prefix_map(self.settings.gemini_prices_usd, float), model)
        price = sized_price(entry, image_size or "1K")
        return float(price if price is not None else self.settings.gemini_price_per_image_usd)

    def estimated_cost_usd(self, options: dict[str, Any]) -> float | None:
        model = str(options.get("model") or "").strip() or self.settings.gemini_model
        size = str(options.get("image_size") or "auto")
        return self.price_usd(model, None if size == "auto" else size)

    def _success(self, answer: wire.Answer, notes: dict[str, Any]) -> ProviderResult:
        notes["cost_usd"] = round(self.price_usd(notes["model"], notes.get("image_size")), 6)
        self.last_error = None
        assert answer.data is not None
        return ProviderResult(answer.data, answer.mime or "image/png", dict(notes))

    async def _after_api_error(
        self,
        exc: genai_errors.APIError,
        call: _Call,
        deadline: Deadline,
        notes: dict[str, Any],
        backoff: float,
    ) -> float:
        """Wait before the next attempt and return the next backoff, or raise the job's error."""
        if errs.is_free_tier(exc):  # a billing problem dressed as a rate limit: waiting never helps
            error = errs.free_tier_error()
            self.last_error = error.message
            raise error
        if exc.code == 429:
            delay = errs.retry_delay_seconds(exc)
            if delay is not None and deadline.fits(delay + self.min_attempt_seconds):
                await asyncio.sleep(delay)
                return backoff
            raise RateLimited(errs.rate_limit_message(delay))
        if exc.code in errs.TRANSIENT_CODES:
            await self._pause(backoff, deadline, notes)
            return min(backoff * 2, self.max_backoff_seconds)
        error = errs.fatal_error(exc, call.model, call.model_from_slot)
        if error.code in errs.OPERATOR_CODES:
            self.last_error = error.message
        raise error

    async def _pause(self, seconds: float, deadline: Deadline, notes: dict[str, Any]) -> None:
        if not deadline.fits(seconds + self.min_attempt_seconds):
            raise errs.out_of_time(notes)
        await asyncio.sleep(seconds)

    def _check_can_try(self, deadline: Deadline, notes: dict[str, Any]) -> None:
        if not deadline.fits(self.min_attempt_seconds):
            raise errs.out_of_time(notes)


PROVIDER = GeminiProvider
