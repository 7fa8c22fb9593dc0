"""What the Gemini service says about itself now: the models a key can use, and a connection check.

`models.list` (`GET /v1beta/models`, paged) is free and creates no work, so it is both the model list
and the check: it proves the address is reachable and the key is accepted, and says whether the chosen
model is still offered. Billing cannot be seen without paying for an image, so the check reports the
last billing refusal a real call met (kept in `last_error` until a call succeeds).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx
from google.genai import errors as genai_errors

from boothgate.providers import gemini_errors as errs
from boothgate.providers.base import CheckResult, ModelInfo

if TYPE_CHECKING:
    from google import genai

    from boothgate.providers.keys import KeyPool
    from boothgate.settings import Settings

# Listing answers in well under a second; past this the service is as good as unreachable.
LIST_TIMEOUT_SECONDS = 15.0
# Models whose supported actions include this can answer generateContent (the only call we make).
GENERATE = "generateContent"
# Image models are the ones whose id says so; "nano-banana" ids carry no "image" in them (gemini.md).
IMAGE_WORDS = ("image", "nano-banana")


class GeminiLive:
    """Mixin for the Gemini provider: `list_models()` and `check()` through the SDK."""

    if TYPE_CHECKING:  # provided by Provider and GeminiProvider; declared for the type checker only
        last_error: str | None
        settings: Settings

        def api_key(self) -> str | None: ...

        def api_keys(self) -> list[str]: ...

        def key_pool(self) -> KeyPool: ...

        def problem(self) -> str | None: ...

        async def _client(self, key: str) -> genai.Client: ...

    async def list_models(self, key: str | None = None) -> list[ModelInfo] | None:
        key = key or self.api_key()
        if key is None:
            raise LookupError(self.problem() or "The Gemini API key is not set.")
        client = await self._client(key)
        models: list[ModelInfo] = []
        async with asyncio.timeout(LIST_TIMEOUT_SECONDS):
            pager = await client.aio.models.list(config={"page_size": 100})
            async for model in pager:
                model_id = (model.name or "").removeprefix("models/")
                if GENERATE not in (model.supported_actions or []):
                    continue
                if not any(word in model_id.lower() for word in IMAGE_WORDS):
                    continue
                models.append(ModelInfo(model_id, model.display_name or model_id))
        return models

    async def check(self) -> CheckResult:
        started = time.monotonic()

        def verdict(ok: bool, message: str) -> CheckResult:
            return CheckResult(ok, message, round(time.monotonic() - started, 3))

        if self.api_key() is None:
            return verdict(False, f"No API key: enter the Gemini key on the settings page ({errs.KEY_SETTING}).")
        if len(self.api_keys()) > 1:
            return verdict(*await self._check_every_key())
        try:
            models = await self.list_models() or []
        except genai_errors.APIError as exc:
            return verdict(False, explain_api_error(exc))
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            return verdict(False, unreachable(self.settings.gemini_base_url, exc))
        model = self.settings.gemini_model
        ids = [m.id for m in models]
        if model not in ids:
            offered = ", ".join(ids[:6]) or "none"
            return verdict(
                False,
                f"Key accepted, but Gemini does not offer the model {model!r} to it. Choose one it lists "
                f"({offered}) in {errs.MODEL_SETTING}.",
            )
        if self.last_error and "billing" in self.last_error.lower():
            return verdict(
                False, f"Key accepted and {model!r} is offered, but the last image call said: {self.last_error}"
            )
        return verdict(True, f"Key accepted; {model!r} is offered ({len(ids)} image models listed).")

    async def _check_every_key(self) -> tuple[bool, str]:
        """Several keys: the free model list with each one. A refused key is flagged (taken out), a key that
        answers is put back in; the verdict names keys only by their masked names."""
        pool = self.key_pool()
        lines, all_ok = [], True
        for state in list(pool.states):
            try:
                await self.list_models(state.key)
            except genai_errors.APIError as exc:
                message = explain_api_error(exc)
                if errs.is_bad_key(exc) or errs.is_free_tier(exc) or exc.code in (401, 403):
                    pool.flag(state, message)
                lines.append(f"{state.masked}: {message}")
                all_ok = False
                continue
            except (TimeoutError, httpx.HTTPError, OSError) as exc:
                lines.append(f"{state.masked}: {unreachable(self.settings.gemini_base_url, exc)}")
                all_ok = False
                continue
            state.flagged = None
            lines.append(f"{state.masked}: key accepted")
        return all_ok, f"{len(pool.states)} keys checked. " + "; ".join(lines)


def explain_api_error(exc: genai_errors.APIError) -> str:
    said = " ".join((exc.message or "").split())[:160]
    if errs.is_free_tier(exc):
        return errs.free_tier_error().message
    if errs.is_bad_key(exc) or exc.code == 403:
        return f"Key refused: Gemini does not accept this API key ({exc.code} {exc.status or ''}: {said})."
    if exc.code == 400 and exc.status == "FAILED_PRECONDITION":
        return f"No billing: Gemini refuses to serve this key's project ({said}). Enable billing in Google AI Studio."
    if exc.code == 404:
        return f"Gemini answered 404 for the model list: check {errs.BASE_URL_SETTING}."
    return f"Gemini answered {exc.code} {exc.status or ''}: {said}"


def unreachable(base_url: str, exc: BaseException) -> str:
    kind = "no answer in time" if isinstance(exc, TimeoutError | httpx.TimeoutException) else type(exc).__name__
    return (
        f"Unreachable: Gemini at {base_url} did not answer ({kind}). Check the internet connection "
        f"and {errs.BASE_URL_SETTING}."
    )
