"""Turbotext photo AI (turbotext.ru): face swap, mix photo, image-to-image.

Turbotext downloads its inputs from URLs, so the photo and the reference are published at short-lived
links on our public address (`request.publish`), then a queue job is created and its result is either
polled for (`get_result`) or delivered to our webhook. The wire details are in `turbotext_wire`, the
webhook matching in `turbotext_inbox`.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from boothgate.errors import DeadlineReached, ProviderFailed, ProviderNotConfigured, RateLimited
from boothgate.providers.base import Kind, Provider, ProviderContext, ProviderRequest, ProviderResult
from boothgate.providers.key_turn import KeyTurn
from boothgate.providers.turbotext_check import TurbotextCheck
from boothgate.providers.turbotext_inbox import WebhookInbox
from boothgate.providers.turbotext_wire import Transient, TurbotextWire, finished_link, pause

log = logging.getLogger(__name__)

METHOD_BY_KIND = {
    Kind.face_swap: "deepfake_photo",
    Kind.background: "mix_images",
    Kind.prompt: "generate_image2image",
}
# Placeholders an operator may use as extra field values; replaced by the published links.
PHOTO_URL = "{photo_url}"
REFERENCE_URL = "{reference_url}"
RESERVED_FIELDS = frozenset({"do", "queueid", "webhook"})
# In webhook mode, stop waiting this long (at most a quarter of the time left) before the deadline
# and ask once by polling, so a lost delivery still gets its result.
WEBHOOK_FALLBACK_SECONDS = 4.0


class TurbotextOptions(BaseModel):
    """Slot options for Turbotext."""

    model_config = ConfigDict(extra="forbid")

    # json_schema_extra: `kinds` = the slot kinds a field applies to (build_form below uses it only
    # there), `advanced` = an expert field; the slot editor shows each field accordingly.
    face_restore: bool = Field(
        True,
        description="Face swap: let Turbotext restore face details after the swap.",
        json_schema_extra={"kinds": ["face_swap"]},
    )
    strength: int = Field(
        40,
        ge=0,
        le=80,
        description="Image-to-image: how far the result may move from the photo (0–80).",
        json_schema_extra={"kinds": ["prompt"]},
    )
    scale: float = Field(
        7.5,
        ge=0.1,
        le=20,
        description="Image-to-image: how closely to follow the prompt (0.1–20).",
        json_schema_extra={"kinds": ["prompt"]},
    )
    seed: int | None = Field(
        None,
        ge=1,
        le=2**32 - 1,
        description="Image-to-image: fixed seed for repeatable results, 1 or more (empty = random).",
        json_schema_extra={"kinds": ["prompt"]},
    )
    negative_prompt: str = Field(
        "",
        description="Image-to-image: what must not appear (at most 80 words).",
        json_schema_extra={"kinds": ["prompt"]},
    )
    method: str = Field(
        "",
        max_length=64,
        description="Another Turbotext method's name, when the processing type's usual one is not what you "
        "need (e.g. object replacement). Empty: the usual one (deepfake_photo / mix_images / generate_image2image).",
        json_schema_extra={"advanced": True},
    )
    extra_fields: dict[str, str] = Field(
        default_factory=dict,
        description='For experts: fields added to the Turbotext request, e.g. {"style": "anime"}. They override '
        "the built ones; an empty value removes a field; {photo_url} and {reference_url} become the image links.",
        json_schema_extra={"advanced": True},
    )

    @field_validator("seed", mode="before")
    @classmethod
    def _zero_seed_is_random(cls, value: Any) -> Any:
        # Turbotext's smallest seed is 1; slots saved before that was known may hold 0 ("any seed").
        return None if value in (0, "0") else value

    @field_validator("method")
    @classmethod
    def _method_name(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"[a-z0-9_]*", value):
            raise ValueError("a Turbotext method name has only lowercase letters, digits and _")
        return value

    @field_validator("negative_prompt")
    @classmethod
    def _at_most_80_words(cls, value: str) -> str:
        if len(value.split()) > 80:
            raise ValueError("Turbotext accepts at most 80 words of negative prompt")
        return value.strip()

    @field_validator("extra_fields")
    @classmethod
    def _field_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise ValueError(f"field name {name!r}: only letters, digits and _")
            if name in RESERVED_FIELDS:
                raise ValueError(f"field {name!r} is set by boothgate itself")
        return value


_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")


def text_language(text: str) -> str:
    """ "en" for text written in English (DeepSeek writes its instructions in English), else "ru" (Turbotext's
    default). Decided by script: any Cyrillic letter means Russian; Latin letters only means English."""
    if _CYRILLIC.search(text) or not _LATIN.search(text):
        return "ru"
    return "en"


def build_form(kind: Kind, text: str, options: TurbotextOptions) -> tuple[str, dict[str, str]]:
    """(method, create_queue fields) with the image links still as placeholders."""
    fields: dict[str, str]
    if kind == Kind.face_swap:
        # `url` is the body the face goes onto (the slot's template), the target gives the face.
        fields = {
            "url": REFERENCE_URL,
            "url_image_target": PHOTO_URL,
            "face_restore": str(options.face_restore),
        }
    elif kind == Kind.background:
        fields = {"url_image_target": PHOTO_URL, "url": REFERENCE_URL, "content": text}
    else:
        fields = {
            "url": PHOTO_URL,
            "content": text,
            "strength": str(options.strength),
            "scale": f"{options.scale:g}",
            "seed": "" if options.seed is None else str(options.seed),
            "negative_prompt": options.negative_prompt,
            # Turbotext reads prompts as Russian unless told: an English one (DeepSeek's) must say so.
            "original_language": "en" if text_language(f"{text} {options.negative_prompt}") == "en" else "",
        }
    fields.update(options.extra_fields)
    method = options.method or METHOD_BY_KIND[kind]
    return method, {name: value for name, value in fields.items() if value != ""}


class TurbotextProvider(TurbotextCheck, Provider):
    name = "turbotext"
    label = "Turbotext"
    kinds = frozenset(Kind)
    max_input_pixels = 2_000_000  # Turbotext downloads inputs over the internet: keep them small
    needs_public_urls = True
    key_setting = "turbotext_api_key"
    Options: ClassVar[type[BaseModel]] = TurbotextOptions
    # Turbotext has no model list: the slot's kind picks the method (or the slot names one).
    methods: ClassVar[tuple[str, ...]] = tuple(METHOD_BY_KIND.values())

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        # Per instance: a settings change builds a new provider (and a new hook secret); a job still
        # waiting on the old one falls back to its poll before the deadline.
        self.inbox = WebhookInbox()

    def estimated_cost_usd(self, options: dict[str, Any]) -> float | None:
        return self.settings.turbotext_price_per_image_usd

    def receive_webhook(self, secret: str, body: dict[str, Any]) -> str | None:
        """Called by the webhook route. None when the secret is wrong, else what became of the body."""
        if not self.inbox.accepts(secret):
            return None
        return self.inbox.deliver(body)

    async def run(self, request: ProviderRequest) -> ProviderResult:
        problem = self.problem()
        if problem or request.publish is None:
            raise ProviderNotConfigured(problem or "Turbotext needs BOOTHGATE_PUBLIC_BASE_URL to be set.")
        method, fields = await self._publish_inputs(request, options_of(request))
        request.notes.update({"model": method, "mode": self.settings.turbotext_mode, "attempts": 0})
        turn = KeyTurn(self.key_pool(), request.deadline, request.notes, self.label)
        try:
            link, wire = await self._create_and_wait(turn, method, fields, request)
            data, mime = await wire.download(link, request.deadline)
            turn.succeeded()
        except ProviderFailed as exc:
            if exc.code in ("provider_auth", "provider_billing"):
                self.last_error = exc.message
            raise
        finally:
            turn.release()
        self.last_error = None
        request.notes["cost_usd"] = self.settings.turbotext_price_per_image_usd
        if "original_language" in fields:
            request.notes["original_language"] = fields["original_language"]
        kept = ("model", "mode", "attempts", "polls", "cost_usd", "original_language", "key", "keys_tried")
        notes = {key: request.notes[key] for key in kept if key in request.notes}
        return ProviderResult(data=data, mime=mime, notes=notes)

    async def _publish_inputs(self, request: ProviderRequest, options: TurbotextOptions) -> tuple[str, dict[str, str]]:
        """Build the form and publish exactly the images it refers to."""
        assert request.publish is not None
        text = (request.instruction or request.prompt).strip()
        method, fields = build_form(request.kind, text, options)
        if method == "generate_image2image" and not fields.get("content"):
            raise ProviderNotConfigured(
                "This slot has no prompt, and Turbotext's image-to-image needs one: write it in the slot.",
                code="prompt_missing",
            )
        links: dict[str, str] = {}
        for placeholder, image in ((PHOTO_URL, request.photo), (REFERENCE_URL, request.reference)):
            if placeholder not in fields.values():
                continue
            if image is None:
                raise ProviderNotConfigured(
                    "This slot needs a reference image for Turbotext: upload one in the slot.",
                    code="reference_missing",
                )
            links[placeholder] = await request.publish(image, request.deadline)
        return method, {name: links.get(value, value) for name, value in fields.items()}

    async def _create_and_wait(
        self, turn: KeyTurn, method: str, fields: dict[str, str], request: ProviderRequest
    ) -> tuple[str, TurbotextWire]:
        """Queue the job and return the result link once it is ready, with the wire (key) that queued it."""
        request.notes["polls"] = 0
        if self.settings.turbotext_mode == "webhook":
            fields = {**fields, "webhook": self.inbox.hook_url(self.settings.public_base_url)}
        wire, answer = await self._queue_with_keys(turn, method, fields, request)
        if self.settings.turbotext_mode == "webhook":
            return await self._await_webhook(wire, method, answer, request), wire
        return await self._poll(wire, method, _queue_id(answer, "queueid"), request), wire

    async def _queue_with_keys(
        self, turn: KeyTurn, method: str, fields: dict[str, str], request: ProviderRequest
    ) -> tuple[TurbotextWire, dict[str, Any]]:
        """`create_queue` with the pool's key; with several keys a 429 rests the key and a refused one is
        taken out, and the job is queued at once with another key (issue 28). Only queueing changes keys:
        a queued job belongs to the account that queued it, so its polls keep that key."""
        state = await turn.take()
        while True:
            wire = TurbotextWire(self.context.http, self.settings.turbotext_base_url, state.key)
            try:
                return wire, await self._create_queue(wire, method, fields, request)
            except RateLimited as exc:
                other = turn.rest_and_switch(exc.wait)
                if other is None:
                    raise
            except ProviderFailed as exc:
                other = turn.flag_and_switch(exc) if exc.code in ("provider_auth", "provider_billing") else None
                if other is None:
                    raise
            state = other

    async def _create_queue(
        self, wire: TurbotextWire, method: str, fields: dict[str, str], request: ProviderRequest
    ) -> dict[str, Any]:
        """`do=create_queue`, retried on 5xx and network errors while a retry can still finish."""
        backoff = 0.25
        while True:
            request.notes["attempts"] += 1
            try:
                answer = await wire.call(method, {"do": "create_queue", **fields}, request.deadline)
            except Transient as exc:
                log.warning("turbotext create_queue failed (%s), attempt %d", exc, request.notes["attempts"])
                if not await pause(request.deadline, backoff):
                    raise DeadlineReached(f"Turbotext kept failing until the deadline ({exc}).") from exc
                backoff = min(backoff * 2, 2.0)
                continue
            if answer.get("success") is not True:
                finished_link(answer, wire.site)  # raises with Turbotext's own text
            return answer

    async def _poll(self, wire: TurbotextWire, method: str, queue_id: str, request: ProviderRequest) -> str:
        """`do=get_result` every poll interval until it is ready; stops at the deadline."""
        interval = self.settings.turbotext_poll_interval_seconds
        while await pause(request.deadline, interval):
            link = await self._poll_once(wire, method, queue_id, request)
            if link is not None:
                return link
        raise DeadlineReached("Turbotext did not finish before the deadline.")

    async def _poll_once(self, wire: TurbotextWire, method: str, queue_id: str, request: ProviderRequest) -> str | None:
        request.notes["polls"] += 1
        try:
            answer = await wire.call(method, {"do": "get_result", "queueid": queue_id}, request.deadline)
        except Transient as exc:
            log.warning("turbotext get_result failed (%s); asking again", exc)
            return None
        return finished_link(answer, wire.site)

    async def _await_webhook(
        self, wire: TurbotextWire, method: str, answer: dict[str, Any], request: ProviderRequest
    ) -> str:
        """Wait for the delivery; shortly before the deadline, ask once by polling instead."""
        asyncid = _queue_id(answer, "asyncid")
        margin = min(WEBHOOK_FALLBACK_SECONDS, request.deadline.remaining() / 4)
        body = await self.inbox.wait(asyncid, request.deadline.earlier(margin))
        if body is not None:
            link = finished_link(body, wire.site)
            if link is not None:
                return link
        log.warning("turbotext webhook for asyncid=%s did not come in time; polling once", asyncid)
        request.notes["webhook_missed"] = True
        link = await self._poll_once(wire, method, asyncid, request)
        if link is None:
            raise DeadlineReached("Turbotext did not deliver its result before the deadline.")
        return link


def options_of(request: ProviderRequest) -> TurbotextOptions:
    """The slot's options; another tab rendering through Turbotext (DeepSeek) may pass its own model,
    whose matching fields are taken and the rest left at Turbotext's defaults."""
    if isinstance(request.options, TurbotextOptions):
        return request.options
    known = request.options.model_dump(include=set(TurbotextOptions.model_fields))
    try:
        return TurbotextOptions.model_validate(known)
    except ValidationError:
        log.warning("options handed to Turbotext do not fit its own; using its defaults")
        return TurbotextOptions.model_validate({})


def _queue_id(answer: dict[str, Any], key: str) -> str:
    value = answer.get(key, answer.get("queueid") if key == "asyncid" else None)
    if not isinstance(value, int | str) or not str(value).strip():
        raise ProviderFailed(f"Turbotext accepted the job but gave no {key}.")
    return str(value).strip()


PROVIDER = TurbotextProvider
