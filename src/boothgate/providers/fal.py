"""The fal.ai tab: one key for Nano Banana 2, Seedream 4.5, FLUX Kontext and BiRefNet.

Per slot a model from the curated table (`fal_models.CURATED`) or an expert's own model id. One job
is a loop of attempts; each attempt submits to the queue, polls the status URL every
`fal_poll_interval_seconds` until COMPLETED, reads the output and downloads the image. 5xx, connection
trouble and `X-Fal-Retryable: true` start another attempt after a pause, 429 after the Retry-After it
names — only while that still fits before the deadline. A request we stop waiting for (deadline, the
booth answered, an error) is cancelled with `PUT cancel_url`, so fal stops working (and billing) too.

BiRefNet is the two-step background option: fal cuts the guests out, `fal_composite` lays the cut-out
onto the slot's reference on the image workers.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
from typing import Any, ClassVar

import httpx

from boothgate.deadline import Deadline
from boothgate.errors import (
    DeadlineReached,
    ProviderFailed,
    ProviderNotConfigured,
    ProviderRefused,
    RateLimited,
)
from boothgate.providers import fal_composite
from boothgate.providers import fal_models as models
from boothgate.providers.base import (
    Kind,
    ModelInfo,
    PreparedImage,
    Provider,
    ProviderContext,
    ProviderRequest,
    ProviderResult,
    all_references,
)
from boothgate.providers.fal_check import FalCheck
from boothgate.providers.fal_options import FalOptions
from boothgate.providers.fal_queue import FalQueue, Retryable, Submitted, detail_text
from boothgate.providers.fal_upscale import upscale
from boothgate.providers.key_turn import KeyTurn
from boothgate.providers.openai_wire import instruction_text

log = logging.getLogger(__name__)

OPERATOR_CODES = frozenset({"provider_auth", "provider_model", "provider_billing"})


class FalProvider(FalCheck, Provider):
    name = "fal"
    label = "fal.ai"
    kinds = frozenset(Kind)
    # Inputs travel inside the JSON as data URIs: keep them to what the models use.
    max_input_pixels = 2_000_000
    # Nano Banana on fal takes up to 14 image_urls (fal's model page): the photo + 13.
    max_references = 13
    key_setting = "fal_api_key"
    Options = FalOptions

    min_attempt_seconds: ClassVar[float] = 1.0
    first_backoff_seconds: ClassVar[float] = 0.5
    max_backoff_seconds: ClassVar[float] = 4.0

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        # Cancels sent after a job stopped waiting; kept so they are not garbage-collected mid-flight.
        self._cancels: set[asyncio.Task[None]] = set()

    def prices_checked(self) -> str | None:
        dates = sorted(m.price_checked for m in models.CURATED.values() if m.price_checked)
        return dates[0] if dates else None

    # --- model list and check -----------------------------------------------------------------
    async def list_models(self) -> list[ModelInfo] | None:
        """fal.ai has no endpoint listing its thousand-odd apps, and most of them are not image edits a
        slot could use. The curated table is what the slot editor can run, so that is the list."""
        return [ModelInfo(m.id, m.label) for m in models.CURATED.values()]

    # --- one job ------------------------------------------------------------------------------
    async def run(self, request: ProviderRequest) -> ProviderResult:
        if not self.api_keys():
            raise ProviderNotConfigured(self.problem() or "The fal.ai API key is not set.")
        options = request.options
        if not isinstance(options, FalOptions):
            options = FalOptions.model_validate(options.model_dump(include=set(FalOptions.model_fields)))
        model = options.resolved()
        if request.kind not in model.kinds:
            raise ProviderNotConfigured(
                f"{model.label} can only be used for {' and '.join(sorted(model.kinds))} slots: choose another model "
                "for this slot.",
                code="slot_incomplete",
            )
        if model.style == "birefnet" and request.reference is None:
            raise ProviderNotConfigured("This slot needs a background image: upload one.", code="reference_missing")
        notes = request.notes
        notes.update(model=model.id, attempts=0, polls=0, problems=[], cost_usd=0.0)
        images = await self._inputs(request, model, notes)
        call = models.build_call(
            model,
            instruction_text(request.kind, request.prompt, request.instruction),
            images,
            (request.photo.width, request.photo.height),
            options.aspect_ratio,
            options.resolution,
            options.output_format,
            options.safety_tolerance,
            [weight.model_dump() for weight in options.loras],
        )
        call.arguments.update(options.extra_arguments)
        notes["endpoint"] = call.endpoint
        for name in ("aspect_ratio", "image_size", "resolution"):
            if name in call.arguments:
                notes[name] = call.arguments[name]
        turn = KeyTurn(self.key_pool(), request.deadline, notes, self.label)
        try:
            queue, data, mime = await self._with_keys(turn, call, request.deadline, notes)
        except ProviderFailed as exc:
            if exc.code in OPERATOR_CODES:
                self.last_error = exc.message
            raise
        finally:
            turn.release()
        if model.style == "birefnet":
            assert request.reference is not None
            data, mime = await self._composite(data, request.reference, options.output_format, request.deadline)
            notes["composited"] = True
        if options.upscale_model:
            attempt = functools.partial(self._attempt, queue)
            data, mime = await upscale(attempt, self.settings, options, data, mime, request)
        self.last_error = None
        price = options.price_usd if options.price_usd is not None else models.price(model, options.resolution)
        notes["cost_usd"] = round(price + float(notes.get("upscale_cost_usd") or 0.0), 6)  # the upscale is paid too
        return ProviderResult(data, mime, dict(notes))

    async def _inputs(self, request: ProviderRequest, model: models.FalModel, notes: dict[str, Any]) -> list[str]:
        """The photo (and reference, except for BiRefNet) as data URIs, or as published links when the
        operator prefers them and a public address is set."""
        images = [request.photo]
        if model.style != "birefnet":
            images += all_references(request)
        if self.settings.fal_inputs == "media_link" and request.publish is not None:
            notes["inputs"] = "media_link"
            return [await request.publish(image, request.deadline) for image in images]
        notes["inputs"] = "data_uri"
        return [_data_uri(image) for image in images]

    async def _with_keys(
        self, turn: KeyTurn, call: models.Call, deadline: Deadline, notes: dict[str, Any]
    ) -> tuple[FalQueue, bytes, str]:
        """The attempts with one key; with several keys a refused key is taken out and a rate-limited one
        rests, and the photo goes on at once with another key (issue 28)."""
        state = await turn.take()
        while True:
            queue = FalQueue(self.context.http, self.settings.fal_queue_url, state.key)
            try:
                data, mime = await self._attempts(queue, call, deadline, notes, hand_over_429=turn.several)
            except RateLimited as exc:
                other = turn.rest_and_switch(exc.wait)
                if other is None:
                    raise
                state = other
                continue
            except ProviderFailed as exc:
                other = turn.flag_and_switch(exc) if exc.code in ("provider_auth", "provider_billing") else None
                if other is None:
                    raise
                state = other
                continue
            turn.succeeded()
            return queue, data, mime

    async def _attempts(
        self,
        queue: FalQueue,
        call: models.Call,
        deadline: Deadline,
        notes: dict[str, Any],
        hand_over_429: bool = False,
    ) -> tuple[bytes, str]:
        backoff = self.first_backoff_seconds
        while True:
            if not deadline.fits(self.min_attempt_seconds):
                raise _out_of_time(notes)
            notes["attempts"] += 1
            try:
                return await self._attempt(queue, call, deadline, notes)
            except Retryable as retry:
                notes["problems"].append(retry.note)
                if retry.rate_limited and hand_over_429:  # several keys: another key goes on at once
                    raise RateLimited(
                        f"fal.ai rate limited this key (429); Retry-After {retry.wait}.", wait=retry.wait
                    ) from None
                wait = retry.wait if retry.wait is not None else backoff
                if retry.rate_limited and retry.wait is None:
                    raise RateLimited("fal.ai is rate limiting requests (429) and names no time to wait.") from None
                if not deadline.fits(wait + self.min_attempt_seconds):
                    if retry.rate_limited:
                        raise RateLimited(
                            f"fal.ai is rate limiting requests (429); it asks to wait {wait:g} s, more than the "
                            "time left for this photo."
                        ) from None
                    raise _out_of_time(notes) from None
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, self.max_backoff_seconds)
            except (TimeoutError, httpx.TimeoutException) as exc:  # the deadline's timeout or httpx's (= time left)
                notes["problems"].append("no answer in time")
                raise _out_of_time(notes) from exc

    async def _attempt(
        self, queue: FalQueue, call: models.Call, deadline: Deadline, notes: dict[str, Any]
    ) -> tuple[bytes, str]:
        submitted = await queue.submit(call.endpoint, call.arguments, deadline)
        notes["request_id"] = submitted.request_id
        done = False
        try:
            output = await self._wait_for_output(queue, submitted, call.endpoint, deadline, notes)
            done = True
        finally:
            if not done:  # the deadline, the booth's answer or an error: fal need not finish it
                self._cancel_later(queue, submitted)
        url = _image_url(output)
        return await queue.download(url, deadline)

    async def _wait_for_output(
        self, queue: FalQueue, submitted: Submitted, endpoint: str, deadline: Deadline, notes: dict[str, Any]
    ) -> dict[str, Any]:
        interval = self.settings.fal_poll_interval_seconds
        while True:
            notes["polls"] += 1
            state = await queue.status(submitted, endpoint, deadline)
            status = str(state.get("status", ""))
            notes["status"] = status
            if status == "COMPLETED":
                if state.get("error"):
                    raise _failed(state)
                output = await queue.result(submitted, endpoint, deadline)
                _refuse_flagged(output)
                return output
            if status in ("FAILED", "CANCELLED", "ERROR"):
                raise _failed(state)
            if "queue_position" in state:
                notes["queue_position"] = state["queue_position"]
            if not deadline.fits(interval + 0.05):
                raise TimeoutError
            await asyncio.sleep(interval)

    def _cancel_later(self, queue: FalQueue, submitted: Submitted) -> None:
        async def cancel() -> None:
            status = await queue.cancel(submitted)
            log.info("fal request=%s cancelled (HTTP %s)", submitted.request_id, status)

        task = asyncio.get_running_loop().create_task(cancel())
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _composite(
        self, cutout: bytes, background: PreparedImage, fmt: str, deadline: Deadline
    ) -> tuple[bytes, str]:
        quality = self.settings.jpeg_quality
        images = self.context.images
        if images is not None:
            return await images.run(deadline.at, fal_composite.composite_cover, cutout, background.data, fmt, quality)
        return await asyncio.to_thread(fal_composite.composite_cover, cutout, background.data, fmt, quality)

    async def aclose(self) -> None:
        if self._cancels:  # let cancels already on their way finish (each has its own short timeout)
            await asyncio.gather(*self._cancels, return_exceptions=True)


def _data_uri(image: PreparedImage) -> str:
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode('ascii')}"


def _image_url(output: dict[str, Any]) -> str:
    images = output.get("images")
    first = images[0] if isinstance(images, list) and images else output.get("image")
    url = first.get("url") if isinstance(first, dict) else None
    if not isinstance(url, str) or not url:
        raise ProviderFailed("fal.ai finished without an image.", code="provider_no_image")
    return url


def _refuse_flagged(output: dict[str, Any]) -> None:
    flags = output.get("has_nsfw_concepts")
    if isinstance(flags, list) and any(flag is True for flag in flags):
        raise ProviderRefused("fal.ai's safety checker flagged the result (has_nsfw_concepts).")


def _failed(state: dict[str, Any]) -> ProviderFailed | ProviderRefused:
    said = detail_text({"detail": state.get("error") or state.get("detail") or state.get("status")})
    if str(state.get("error_type", "")) in ("content_policy_violation", "nsfw_content_detected"):
        return ProviderRefused(f"fal.ai's safety filter refused this photo or prompt ({said}).")
    return ProviderFailed(f"fal.ai could not finish the request ({state.get('status')}: {said}).")


def _out_of_time(notes: dict[str, Any]) -> DeadlineReached | ProviderFailed:
    problems = notes.get("problems", [])
    detail = ", ".join(problems) or f"status {notes.get('status', 'unknown')}"
    if problems and problems[-1] != "no answer in time":
        return ProviderFailed(
            f"fal.ai kept failing and there is no time left for another try ({detail}).", code="provider_unavailable"
        )
    return DeadlineReached(f"No image from fal.ai before the deadline ({detail}, {notes.get('polls', 0)} polls).")


PROVIDER = FalProvider
