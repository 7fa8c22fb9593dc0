"""The provider contract: capabilities, an options model, one async method.

A provider turns (kind, photo, reference, prompt, options, deadline) into result bytes. Connection
details (key, base URL, HTTP client) come in through `ProviderContext`, built from settings, so every
base URL is a setting and tests point the real SDKs at loopback fakes.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict

from boothgate.deadline import Deadline

# Part of the provider contract, defined apart so that image worker processes need not import this module.
from boothgate.imaging.prepared import PreparedImage
from boothgate.providers.capabilities import RefusedCapabilities
from boothgate.providers.keys import KeyPool, KeyPools, key_list

if TYPE_CHECKING:
    from boothgate.settings import Settings


class Kind(StrEnum):
    face_swap = "face_swap"
    background = "background"
    prompt = "prompt"


KINDS_NEEDING_REFERENCE = frozenset({Kind.face_swap, Kind.background})


class NoOptions(BaseModel):
    """A provider without slot options."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class ProviderRequest:
    """One photo through one slot, as the provider sees it."""

    job_id: str
    kind: Kind
    photo: PreparedImage
    reference: PreparedImage | None
    prompt: str
    options: BaseModel
    deadline: Deadline
    # A complete instruction written upstream (the DeepSeek stage). When set, the provider sends it as
    # the text verbatim instead of building one from its per-kind template and `prompt`.
    instruction: str | None = None
    # Publishes bytes at a short-lived public URL that expires with the deadline (for providers that
    # download their inputs, like Turbotext). None when no public base URL is set.
    publish: Callable[[PreparedImage, Deadline], Awaitable[str]] | None = None
    # Free-form notes the provider wants recorded with the job (model, attempts, usage, cost...).
    notes: dict[str, Any] = field(default_factory=dict)
    # Issue 28: the slot's further references after `reference`, in order (each sent after the one before).
    references: list[PreparedImage] = field(default_factory=list)
    # The aspect (width, height) the result will be cut to for the booth's print layout; providers that
    # take a shape ask for the nearest one they support, so the cut removes as little as possible.
    result_aspect: tuple[int, int] | None = None
    # The size the shaping step will answer in (a fixed size as set, or the photo's capped by the long-side
    # setting): what an AI upscale must reach. None: the result is answered as returned.
    print_size: tuple[int, int] | None = None


def all_references(request: ProviderRequest) -> list[PreparedImage]:
    """The slot's references in order: the first, then the further ones."""
    return ([request.reference] if request.reference is not None else []) + list(request.references)


@dataclass(frozen=True)
class ModelInfo:
    """One model a provider's service offers now (read live, never a list baked into code)."""

    id: str
    label: str = ""


@dataclass
class CheckResult:
    """A cheap live call's verdict, in words an operator can act on."""

    ok: bool
    message: str
    seconds: float = 0.0
    # The service refused the key itself (authentication, billing): with several keys it is flagged.
    key_refused: bool = False


@dataclass
class ProviderResult:
    data: bytes
    mime: str
    notes: dict[str, Any] = field(default_factory=dict)


T = TypeVar("T")


class ImageRunner(Protocol):
    """Runs blocking image work off the event loop, earliest deadline first (`services.workers.ImageWorkers`).

    `func` must be a module-level function with picklable arguments: workers may be processes."""

    async def run(self, deadline: float | None, func: Callable[..., T], *args: object) -> T: ...


@dataclass
class ProviderContext:
    """What a provider needs from the outside world. Built from settings; replaced when they change."""

    settings: Settings
    http: httpx.AsyncClient
    # Another tab's provider by name (DeepSeek renders through Gemini or Turbotext). Set by the registry.
    lookup: Callable[[str], Provider | None] | None = None
    # The image workers, for providers that compute on this machine (the offline tab). None in tests
    # that build a context by hand: such a provider then runs its work on a plain thread.
    images: ImageRunner | None = None
    # Fields a service refused per provider and model (kept in the database by the runtime; in memory in
    # tests that build a context by hand). The same object across settings changes.
    refusals: RefusedCapabilities = field(default_factory=RefusedCapabilities)
    # Several API keys per provider: which key a call uses, which rest after a 429, which are flagged.
    keys: KeyPools = field(default_factory=KeyPools)


class Provider(abc.ABC):
    """A provider tab. Subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]
    label: ClassVar[str]
    kinds: ClassVar[frozenset[Kind]] = frozenset(Kind)
    max_input_pixels: ClassVar[int] = 4_000_000
    # How many reference images a slot may hold, sent after the photo in order (from the provider's
    # documentation; 1 where the service takes only one or says nothing).
    max_references: ClassVar[int] = 1
    needs_public_urls: ClassVar[bool] = False
    key_setting: ClassVar[str] = ""  # settings field holding the API key, e.g. "gemini_api_key"
    model_setting: ClassVar[str] = ""  # settings field holding the default model, e.g. "gemini_model"
    Options: ClassVar[type[BaseModel]] = NoOptions
    # Whether a call costs money: paid calls count against an event's budget (operator/budget.py).
    paid: ClassVar[bool] = True

    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        # The last failure the operator must fix (bad key, billing, unknown model): shown on the tab
        # and in statistics until a call succeeds again.
        self.last_error: str | None = None

    @property
    def settings(self) -> Settings:
        return self.context.settings

    def api_keys(self) -> list[str]:
        """Every key of this provider: `<key_setting>s` (comma-separated) first, then the single key."""
        if not self.key_setting:
            return []
        return key_list(
            getattr(self.settings, self.key_setting + "s", None), getattr(self.settings, self.key_setting, None)
        )

    def key_pool(self) -> KeyPool:
        return self.context.keys.pool(self.name, self.api_keys())

    def api_key(self) -> str | None:
        """The key for a call that uses one key (a check, a model list): the pool's pick, else the first."""
        keys = self.api_keys()
        if not keys:
            return None
        state = self.key_pool().pick()
        return state.key if state is not None else keys[0]

    def problem(self) -> str | None:
        """Why this provider cannot run now (operator-facing text), or None when it is ready."""
        if self.key_setting and not self.api_keys():
            return f"API key is not set: set BOOTHGATE_{self.key_setting.upper()} or enter it on the settings page."
        if self.needs_public_urls and not self.settings.public_base_url:
            return "Public base URL is not set: set BOOTHGATE_PUBLIC_BASE_URL so the provider can download photos."
        return None

    def describe(self) -> dict[str, Any]:
        """Public facts for /health and the UI (never secrets)."""
        return {
            "name": self.name,
            "label": self.label,
            "kinds": sorted(self.kinds),
            "configured": self.problem() is None,
            "problem": self.problem(),
            "last_error": self.last_error,
            "max_input_pixels": self.max_input_pixels,
            "max_references": self.max_references,
            "needs_public_urls": self.needs_public_urls,
            "options_schema": self.Options.model_json_schema(),
            # Per key (masked, never the value): calls, failures, rest after a 429, flag after a refusal.
            "keys": self.key_pool().public() if self.key_setting else [],
            "refused_fields": [
                {"model": r.model, "field": r.field, "message": r.message}
                for r in self.context.refusals.listing()
                if r.provider == self.name
            ],
        }

    def validate_options(self, options: dict[str, Any]) -> BaseModel:
        """A slot's options as this provider runs them; raises pydantic's ValidationError when invalid.

        Overridden when options depend on another tab (DeepSeek checks its renderer's options).
        """
        return self.Options.model_validate(options)

    def input_pixels(self) -> int:
        """Pixels to downscale inputs to: the smaller of the provider's limit and the setting."""
        return min(self.max_input_pixels, self.settings.provider_input_pixels)

    async def list_models(self) -> list[ModelInfo] | None:
        """The models the service offers now (a live call; callers cache it), or None when the service has
        no model list (Turbotext: its methods are the choice). Raises on a failed call."""
        return None

    def prices_checked(self) -> str | None:
        """The day this provider's prices were last compared with the service's price page (a setting
        `<name>_prices_checked`, or the catalogue's date), or None when it has no prices."""
        value = getattr(self.settings, f"{self.name}_prices_checked", None)
        return str(value) if value else None

    def estimated_cost_usd(self, options: dict[str, Any]) -> float | None:
        """What one result of a slot with these options is expected to cost in USD (the rehearsal's
        estimate before it spends money), or None when unknown."""
        return None

    # Text to image for the operator (issue 28): "make a reference from a prompt" on a slot card.
    can_generate: ClassVar[bool] = False

    def generate_cost_usd(self) -> float | None:
        """What one generated image costs (said before the operator pays), or None when unknown."""
        return None

    async def generate(self, prompt: str, deadline: Deadline) -> ProviderResult:
        """One image from a prompt alone (paid). Providers that can set `can_generate`."""
        raise NotImplementedError(f"{self.label} cannot make an image from a prompt alone.")

    async def check(self) -> CheckResult:
        """A cheap live call that creates no paid work and says in plain words what is wrong, if anything."""
        problem = self.problem()
        return CheckResult(problem is None, problem or "Ready (no live check for this provider).")

    @abc.abstractmethod
    async def run(self, request: ProviderRequest) -> ProviderResult:
        """Produce the result, or raise a `boothgate.errors.BoothError`. Must respect the deadline."""

    async def aclose(self) -> None:
        """Release clients the provider owns (the shared HTTP client is closed elsewhere)."""
