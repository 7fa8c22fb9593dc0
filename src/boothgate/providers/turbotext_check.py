"""Turbotext's connection check: a call whose answer differs for a refused key, and creates no paid work.

Turbotext has no model list. Its discovery method `available_api` (the same two steps as every method:
`create_queue`, then `get_result`) lists the methods the account may call and makes no image. With a
refused key the very first step fails (HTTP 401/403, or HTTP 200 `{"success": false, "error": ...}`),
with a good one it is queued. That first answer is what the check judges; the list that follows is shown
when it comes in time. How sure we are: the two-step shape and `success:false` with a text are in
Turbotext's public docs; the exact texts for a bad key or an empty balance are not, so they are matched
by words (`turbotext_wire.failure`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from boothgate.deadline import Deadline
from boothgate.errors import BoothError
from boothgate.providers.base import CheckResult
from boothgate.providers.key_turn import check_every_key
from boothgate.providers.turbotext_wire import KEY_ENV, Transient, TurbotextWire, failure, is_pending

if TYPE_CHECKING:
    from boothgate.providers.base import ProviderContext
    from boothgate.providers.keys import KeyPool
    from boothgate.settings import Settings

DISCOVERY_METHOD = "available_api"
CHECK_SECONDS = 12.0
POLL_SECONDS = 1.0


class TurbotextCheck:
    """Mixin for the Turbotext provider: `check()`."""

    if TYPE_CHECKING:  # provided by Provider; declared for the type checker only
        last_error: str | None
        settings: Settings

        context: ProviderContext

        def api_key(self) -> str | None: ...

        def key_pool(self) -> KeyPool: ...

    async def check(self) -> CheckResult:
        if self.api_key() is None:
            return CheckResult(False, f"No API key: enter the Turbotext key on the settings page ({KEY_ENV}).")
        return await check_every_key(self.key_pool(), self._check_key)

    async def _check_key(self, key: str) -> CheckResult:
        started = time.monotonic()

        def verdict(ok: bool, message: str, refused: bool = False) -> CheckResult:
            return CheckResult(ok, message, round(time.monotonic() - started, 3), key_refused=refused)

        deadline = Deadline.after(CHECK_SECONDS)
        wire = TurbotextWire(self.context.http, self.settings.turbotext_base_url, key)
        try:
            answer = await wire.call(DISCOVERY_METHOD, {"do": "create_queue"}, deadline)
        except Transient as exc:
            return verdict(
                False, f"Unreachable: Turbotext at {self.settings.turbotext_base_url} did not answer ({exc})."
            )
        except BoothError as exc:
            return verdict(False, _plain(exc), _refused(exc))
        if answer.get("success") is not True and not is_pending(answer):
            refusal = failure(answer)
            return verdict(False, _plain(refusal), _refused(refusal))
        methods = await _methods(wire, answer, deadline)
        listed = f" Methods this account may call: {', '.join(methods)}." if methods else ""
        if not self.settings.public_base_url:
            return verdict(
                False,
                "Key accepted, but BOOTHGATE_PUBLIC_BASE_URL is not set: Turbotext downloads photos from it." + listed,
            )
        return verdict(True, "Key accepted by Turbotext." + listed)


async def _methods(wire: TurbotextWire, answer: dict[str, Any], deadline: Deadline) -> list[str]:
    """The method names `available_api` reports, when they come before the check's own deadline."""
    queue_id = answer.get("queueid")
    if queue_id is None:
        return []
    while deadline.fits(POLL_SECONDS + 1):
        await asyncio.sleep(POLL_SECONDS)
        try:
            result = await wire.call(DISCOVERY_METHOD, {"do": "get_result", "queueid": str(queue_id)}, deadline)
        except (Transient, BoothError):
            return []
        if is_pending(result):
            continue
        return _names(result)
    return []


def _names(result: dict[str, Any]) -> list[str]:
    """The method names of an `available_api` answer. Turbotext's docs show a top-level list of objects,
    `{"available_api": [{"name": "clickbait", "description": "…"}, …]}`; plain strings and the same list
    under `data` are read too."""
    data = result.get("available_api")
    if data is None:
        data = result.get("data")
    if isinstance(data, dict):
        data = data.get("available_api", data.get("methods", list(data.keys())))
    if not isinstance(data, list):
        return []
    names = []
    for item in data:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name.strip():
            names.append(name.strip()[:60])
    return names[:40]


def _refused(exc: BoothError) -> bool:
    return exc.code in ("provider_auth", "provider_billing")


def _plain(exc: BoothError) -> str:
    """The check's wording: the failure class first, in the operator's terms."""
    if exc.code == "provider_auth":
        return f"Key refused: {exc.message}"
    if exc.code == "provider_billing":
        return f"No billing: {exc.message}"
    if exc.code == "rate_limited":
        return f"Turbotext is limiting requests right now: {exc.message}"
    return exc.message
