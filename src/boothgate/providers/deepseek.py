"""The DeepSeek tab: DeepSeek reads the photo and writes the instruction, another tab renders it.

DeepSeek's API makes no images, but its vision model can look at the guest's photo. So a DeepSeek slot
is two stages (analyse → write the prompt → render, as in seed 000):

1. DeepSeek looks at the photo (and the slot's reference), the slot's kind and prompt, and writes the
   precise instruction for this guest: how many people, who stands where, what stays unchanged.
   The stage has its own budget (`deepseek_stage_seconds`, at most half the time left).
2. The slot's renderer (Gemini or Turbotext) runs with that instruction verbatim, the same photo and
   reference, and the renderer options stored in the slot.

If stage 1 fails for any reason (balance empty, 429, 503, slow, refused, unreadable answer) the job goes
on with the slot's own prompt, so the guest still gets a result; why is recorded in the job's notes
under "deepseek", next to the instruction when there is one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from boothgate.deadline import Deadline
from boothgate.errors import BoothError, ProviderNotConfigured
from boothgate.providers.base import Kind, Provider, ProviderContext, ProviderRequest, ProviderResult
from boothgate.providers.deepseek_live import DeepSeekLive
from boothgate.providers.deepseek_writer import InstructionWriter, StageFailed, Written, close_quietly
from boothgate.providers.key_turn import KeyTurn
from boothgate.providers.registry import TAB_LABELS

log = logging.getLogger("boothgate.providers.deepseek")

RENDERERS: tuple[str, ...] = ("gemini", "turbotext")
# The DeepSeek stage may use at most this share of the time left, so the renderer keeps the rest.
STAGE_SHARE = 0.5


class DeepSeekOptions(BaseModel):
    """Slot options of the DeepSeek tab."""

    model_config = ConfigDict(extra="forbid")

    renderer: Literal["gemini", "turbotext"] = Field(
        "gemini", description="The tab that draws the result from DeepSeek's instruction."
    )
    renderer_options: dict[str, Any] = Field(
        default_factory=dict,
        description="The renderer's own slot options (the same fields as on its tab); checked on save.",
        # the slot editor shows the options of the tab named in `renderer` as a sub-form
        json_schema_extra={"options_of": "renderer"},
    )
    thinking: bool = Field(
        False,
        description="Let DeepSeek think before writing: more careful with crowded photos, but slower, "
        "and it may run past the stage budget (then the slot's own prompt is used).",
    )


class DeepSeekProvider(DeepSeekLive, Provider):
    name = "deepseek"
    label = "DeepSeek"
    kinds = frozenset(Kind)
    key_setting = "deepseek_api_key"
    model_setting = "deepseek_model"
    Options = DeepSeekOptions

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        # One SDK client per key (several keys: issue 28), built on first use.
        self._writers: dict[str, InstructionWriter] = {}
        self._building = asyncio.Lock()

    # --- the renderer -------------------------------------------------------------------------
    def _lookup(self, name: str) -> Provider | None:
        lookup = self.context.lookup
        return lookup(name) if lookup is not None else None

    def renderer_problem(self, name: str) -> str | None:
        renderer = self._lookup(name)
        if renderer is None:
            return f"{_label(name)} is not available in this version, so it cannot render DeepSeek slots."
        problem = renderer.problem()
        return f"DeepSeek renders this slot through {_label(name)}, which is not ready: {problem}" if problem else None

    def problem(self) -> str | None:
        """Not ready without a DeepSeek key, or when no renderer is ready (a slot's own renderer is
        checked when it runs, since slots may choose different renderers)."""
        own = super().problem()
        if own:
            return own
        problems = [self.renderer_problem(name) for name in RENDERERS]
        if all(problems):
            return "No renderer is ready. " + " ".join(p for p in problems if p)
        return None

    def validate_options(self, options: dict[str, Any]) -> BaseModel:
        """DeepSeek's options, with `renderer_options` checked by the renderer's own Options model."""
        validated = DeepSeekOptions.model_validate(options)
        renderer = self._lookup(validated.renderer)
        if renderer is None:  # not in this version: checked again when the slot runs
            return validated
        try:
            inner = renderer.validate_options(validated.renderer_options)
        except ValidationError as exc:
            details = [
                {
                    "type": e["type"],
                    "loc": ("renderer_options", *e["loc"]),
                    "input": e["input"],
                    **({"ctx": e["ctx"]} if "ctx" in e else {}),
                }
                for e in exc.errors()
            ]
            raise ValidationError.from_exception_data(DeepSeekOptions.__name__, details) from None  # type: ignore[arg-type]
        return validated.model_copy(update={"renderer_options": inner.model_dump(mode="json")})

    def input_pixels(self) -> int:
        """The photo is prepared once for both stages: small enough for any renderer."""
        limits = [super().input_pixels()]
        for name in RENDERERS:
            renderer = self._lookup(name)
            if renderer is not None:
                limits.append(renderer.input_pixels())
        return min(limits)

    def estimated_cost_usd(self, options: dict[str, Any]) -> float | None:
        """The renderer's image price (DeepSeek's own tokens cost a fraction of a cent)."""
        renderer = self._lookup(str(options.get("renderer") or "gemini"))
        return None if renderer is None else renderer.estimated_cost_usd(options.get("renderer_options") or {})

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["renderers"] = {
            name: {
                "label": _label(name),
                "configured": renderer is not None and renderer.problem() is None,
                "problem": self.renderer_problem(name),
                "options_schema": renderer.Options.model_json_schema() if renderer else None,
            }
            for name in RENDERERS
            for renderer in [self._lookup(name)]
        }
        return described

    def _renderer_for(self, request: ProviderRequest, options: DeepSeekOptions) -> tuple[Provider, BaseModel]:
        problem = self.renderer_problem(options.renderer)
        renderer = self._lookup(options.renderer)
        if problem or renderer is None:
            raise ProviderNotConfigured(problem or f"{options.renderer} is not available.")
        if request.kind not in renderer.kinds:
            raise ProviderNotConfigured(
                f"{_label(options.renderer)} cannot do {request.kind.value}: choose another renderer for this slot.",
                code="slot_incomplete",
            )
        try:
            return renderer, renderer.validate_options(options.renderer_options)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "renderer_options"
            raise ProviderNotConfigured(
                f"This slot's {_label(options.renderer)} options are invalid ({where}: {first['msg']}): "
                "open the slot and save its renderer options again.",
                code="slot_incomplete",
            ) from None

    # --- one job ------------------------------------------------------------------------------
    async def run(self, request: ProviderRequest) -> ProviderResult:
        options = request.options
        if not isinstance(options, DeepSeekOptions):
            options = DeepSeekOptions.model_validate(options.model_dump())
        renderer, renderer_options = self._renderer_for(request, options)  # before paying DeepSeek
        written = await self._write(request, options)
        renderer_notes: dict[str, Any] = {"name": options.renderer}
        request.notes["renderer"] = renderer_notes  # the same dict: kept even when rendering fails
        try:
            result = await renderer.run(
                ProviderRequest(
                    job_id=request.job_id,
                    kind=request.kind,
                    photo=request.photo,
                    reference=request.reference,
                    prompt=request.prompt,  # the renderer's template uses it when there is no instruction
                    options=renderer_options,
                    deadline=request.deadline,
                    instruction=written.instruction if written else None,
                    publish=request.publish,
                    notes=renderer_notes,
                    result_aspect=request.result_aspect,  # the renderer fits and upscales to the same print
                    print_size=request.print_size,
                )
            )
            renderer_notes.update(result.notes)
            renderer_notes["name"] = options.renderer
        finally:
            request.notes["cost_usd"] = _total_cost(request.notes)
        total = request.notes["cost_usd"]
        return ProviderResult(result.data, result.mime, {"cost_usd": total, "renderer": renderer_notes})

    async def _write(self, request: ProviderRequest, options: DeepSeekOptions) -> Written | None:
        """Stage 1: the instruction, or None (the reason recorded) so the slot's own prompt is used."""
        stage = stage_deadline(request.deadline, self.settings.deepseek_stage_seconds)
        notes: dict[str, Any] = {"status": "running", "model": self.settings.deepseek_model, "instruction": None}
        notes["budget_seconds"] = round(stage.remaining(), 3)
        request.notes["deepseek"] = notes
        request.notes["model"] = self.settings.deepseek_model
        started = time.monotonic()
        turn = KeyTurn(self.key_pool(), stage, notes, self.label)  # the stage's notes: the renderer has its own key
        try:
            written = await self._write_with_keys(turn, request, stage, options)
        except StageFailed as failed:
            self._record_failure(request, notes, failed, started)
            return None
        except Exception as exc:  # the guest must still get a result: anything else falls back too
            log.exception("job=%s deepseek stage crashed", request.job_id)
            crashed = StageFailed("internal", f"The DeepSeek stage failed ({type(exc).__name__}).")
            self._record_failure(request, notes, crashed, started)
            return None
        finally:
            turn.release()
        self.last_error = None
        notes.update(
            status="written",
            reason=None,
            instruction=written.instruction,
            people=written.people,
            model=written.model,
            usage=written.usage,
            cost_usd=written.cost_usd,
            seconds=round(time.monotonic() - started, 3),
        )
        request.notes["cost_usd"] = written.cost_usd
        return written

    def _record_failure(
        self, request: ProviderRequest, notes: dict[str, Any], failed: StageFailed, started: float
    ) -> None:
        if failed.operator_error:
            self.last_error = failed.operator_error
        notes.update(
            status="fallback",
            code=failed.code,
            reason=failed.reason,
            instruction=None,
            usage=failed.usage,
            cost_usd=failed.cost_usd,
            seconds=round(time.monotonic() - started, 3),
        )
        request.notes["cost_usd"] = failed.cost_usd
        log.info("job=%s deepseek fallback code=%s seconds=%.3f", request.job_id, failed.code, notes["seconds"])

    async def _write_with_keys(
        self, turn: KeyTurn, request: ProviderRequest, stage: Deadline, options: DeepSeekOptions
    ) -> Written:
        """The instruction with the pool's key; with several keys a 429 rests the key and a refused or
        empty account is taken out, and the stage goes on at once with another key (issue 28)."""
        try:
            state = await turn.take()
        except BoothError as exc:  # every key resting or refused: the slot's own prompt is used
            raise StageFailed(exc.code, exc.message) from None
        while True:
            writer = await self._writer(state.key)
            try:
                written = await writer.write(
                    request.kind, request.prompt, request.photo, request.reference, stage, thinking=options.thinking
                )
            except StageFailed as failed:
                other = None
                if failed.code == "rate_limited":
                    other = turn.rest_and_switch(failed.wait)
                elif failed.code in ("auth", "balance_empty"):
                    other = turn.flag_and_switch(failed.reason)
                if other is None:
                    raise
                state = other
                continue
            turn.succeeded()
            return written

    async def _writer(self, key: str | None = None) -> InstructionWriter:
        # Built once per key: a settings change builds a new provider (and closes this one). In a thread: its
        # SDK client loads the CA certificates (30-70 ms of CPU that would hold up every booth on the loop).
        key = key or self.api_key()
        if key is None:
            raise StageFailed("not_configured", "The DeepSeek API key is not set.")
        async with self._building:
            if key not in self._writers:
                self._writers[key] = await asyncio.to_thread(InstructionWriter, self.settings, key)
        return self._writers[key]

    async def aclose(self) -> None:
        writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            await close_quietly(writer)


def _label(tab: str) -> str:
    return TAB_LABELS.get(tab, tab.capitalize())


def _total_cost(notes: dict[str, Any]) -> float:
    """DeepSeek's tokens plus the renderer's images: what the job cost."""
    deepseek = notes.get("deepseek", {}).get("cost_usd") or 0.0
    renderer = notes.get("renderer", {}).get("cost_usd") or 0.0
    return round(float(deepseek) + float(renderer), 6)


def stage_deadline(deadline: Deadline, stage_seconds: float) -> Deadline:
    """The DeepSeek stage's own deadline: its budget, never more than half the time left."""
    return deadline.capped(min(stage_seconds, deadline.remaining() * STAGE_SHARE))


PROVIDER = DeepSeekProvider
