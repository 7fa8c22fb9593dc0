"""What DeepSeek says about itself now: its model list (`GET /models`) and a connection check.

Both go through the same `openai` SDK client as the instructions (OpenAI-compatible services answer
`GET /models` the same way). The check adds `GET /user/balance`, DeepSeek's free balance query, so an
empty account is told apart from a refused key without paying for a completion.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import openai

from boothgate.providers.base import CheckResult, ModelInfo
from boothgate.providers.key_turn import check_every_key

if TYPE_CHECKING:
    from boothgate.providers.deepseek_writer import InstructionWriter
    from boothgate.providers.keys import KeyPool
    from boothgate.settings import Settings

LIST_TIMEOUT_SECONDS = 15.0
KEY_ENV = "BOOTHGATE_DEEPSEEK_API_KEY"
MODEL_ENV = "BOOTHGATE_DEEPSEEK_MODEL"


class DeepSeekLive:
    """Mixin for the DeepSeek provider: `list_models()` and `check()`."""

    if TYPE_CHECKING:  # provided by Provider and DeepSeekProvider; declared for the type checker only
        last_error: str | None
        settings: Settings

        def api_key(self) -> str | None: ...

        def key_pool(self) -> KeyPool: ...

        async def _writer(self, key: str | None = None) -> InstructionWriter: ...

    async def list_models(self, key: str | None = None) -> list[ModelInfo] | None:
        if (key or self.api_key()) is None:
            raise LookupError("The DeepSeek API key is not set.")
        client = (await self._writer(key)).client
        models: list[ModelInfo] = []
        async with asyncio.timeout(LIST_TIMEOUT_SECONDS):
            async for model in client.models.list(timeout=LIST_TIMEOUT_SECONDS):
                models.append(ModelInfo(model.id, model.id))
        return models

    async def check(self) -> CheckResult:
        if self.api_key() is None:
            return CheckResult(False, f"No API key: enter the DeepSeek key on the settings page ({KEY_ENV}).")
        return await check_every_key(self.key_pool(), self._check_key)

    async def _check_key(self, key: str) -> CheckResult:
        started = time.monotonic()

        def verdict(ok: bool, message: str, refused: bool = False) -> CheckResult:
            return CheckResult(ok, message, round(time.monotonic() - started, 3), key_refused=refused)

        base = self.settings.deepseek_base_url
        try:
            models = await self.list_models(key) or []
            balance = await self._balance(key)
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                return verdict(False, f"Key refused: DeepSeek does not accept this API key ({exc.status_code}).", True)
            if exc.status_code == 402:
                return verdict(
                    False, "No billing: the DeepSeek balance is empty (402). Top it up at platform.deepseek.com.", True
                )
            return verdict(False, f"DeepSeek answered {exc.status_code}; check {base} and try again.")
        except (openai.APIConnectionError, TimeoutError, OSError) as exc:
            return verdict(False, f"Unreachable: DeepSeek at {base} did not answer ({type(exc).__name__}).")
        model = self.settings.deepseek_model
        ids = [m.id for m in models]
        if model not in ids:
            offered = ", ".join(ids[:6]) or "none"
            return verdict(
                False, f"Key accepted, but DeepSeek does not offer the model {model!r} ({offered}): check {MODEL_ENV}."
            )
        if balance is False:
            return verdict(
                False, "No billing: the DeepSeek balance is empty. Top it up at platform.deepseek.com.", True
            )
        return verdict(True, f"Key accepted; {model!r} is offered.")

    async def _balance(self, key: str | None = None) -> bool | None:
        """Whether the account can pay for calls (`is_available`), or None when the service does not say."""
        client = (await self._writer(key)).client
        try:
            answer: Any = await client.get("/user/balance", cast_to=object, options={"timeout": LIST_TIMEOUT_SECONDS})
        except openai.NotFoundError:
            return None  # an OpenAI-compatible service without DeepSeek's balance query
        if isinstance(answer, dict) and isinstance(answer.get("is_available"), bool):
            return bool(answer["is_available"])
        return None
