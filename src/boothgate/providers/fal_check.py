"""fal.ai's connection check: a status query for a request id that does not exist, with every key."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from boothgate.providers import fal_models as models
from boothgate.providers.base import CheckResult
from boothgate.providers.fal_queue import detail_text
from boothgate.providers.key_turn import check_every_key

if TYPE_CHECKING:
    from boothgate.providers.base import ProviderContext
    from boothgate.providers.keys import KeyPool
    from boothgate.settings import Settings


class FalCheck:
    """Mixin for the fal.ai provider: `check()`."""

    if TYPE_CHECKING:  # provided by Provider; declared for the type checker only
        last_error: str | None
        settings: Settings
        context: ProviderContext

        def problem(self) -> str | None: ...

        def key_pool(self) -> KeyPool: ...

    async def check(self) -> CheckResult:
        """A status query for a request id that does not exist: free, and it proves the key and the queue
        address. The URL takes owner/app only (fal's docs: "do not add the endpoint path"; a sub-path answers
        405). 401/403 = the key is refused. Only a 404 that names the request (the queue looked it up, so the
        key passed) counts as accepted: a 404 for the app, a 405 or any other answer says the address is wrong."""
        problem = self.problem()
        if problem:
            return CheckResult(False, problem)
        return await check_every_key(self.key_pool(), self._check_key)

    async def _check_key(self, key: str) -> CheckResult:
        request_id = "00000000-0000-0000-0000-000000000000"
        queue = self.settings.fal_queue_url.strip().rstrip("/")
        url = f"{queue}/{models.app_of(models.DEFAULT_MODEL)}/requests/{request_id}/status"
        started = time.monotonic()
        try:
            response = await self.context.http.get(url, headers={"Authorization": f"Key {key}"}, timeout=10.0)
        except Exception as exc:
            return CheckResult(
                False,
                f"fal.ai could not be reached ({type(exc).__name__}): check BOOTHGATE_FAL_QUEUE_URL.",
                _since(started),
            )
        said = detail_text(_json_or_text(response))
        status = response.status_code
        if status in (401, 403):
            return CheckResult(
                False,
                f"fal.ai refused the key ({status}: {said}). Check BOOTHGATE_FAL_API_KEY.",
                _since(started),
                key_refused=True,
            )
        if status >= 500:
            return CheckResult(False, f"fal.ai answered HTTP {status}; try again in a minute.", _since(started))
        if status == 404 and "request" in said.lower():
            self.last_error = None
            return CheckResult(True, "fal.ai accepts the key.", _since(started))
        return CheckResult(
            False,
            f"fal.ai's queue answered HTTP {status} ({said or 'no detail'}) where it should say the test request "
            "does not exist: check BOOTHGATE_FAL_QUEUE_URL.",
            _since(started),
        )  # fmt: skip


def _json_or_text(response: Any) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text[:300]


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
