"""What a booth request that never proved the upload password may leave behind: nothing lasting.

- Its photo bytes are never written to disk: until the password is proved they stay in memory
  (`PasswordProof`), within one budget for all such requests together (`UNPROVEN_MEMORY_BYTES`). Every
  byte held for such a request counts against it: the photo's and its ordinary form fields' alike.
  DSLR Remote Pro sends the password field before the file, so its photos go to disk as they arrive.
- A password field is checked the moment it has arrived: a wrong one ends the upload there (401).
- When it fails, only a metadata record is kept (job row and trash sidecar, no body), and only
  `unauthenticated_records_per_minute` of them per address — an IPv6 address counted by its prefix
  (`ipv6_throttle_prefix`) — and `unauthenticated_records_total_per_minute` from all addresses together;
  the rest are only counted (`unrecorded`, shown in Statistics). A malformed request without a password
  counts as a wrong password. A record-only trash entry never pushes a booth's original out of the trash
  (records/trash.py).
- On PostgreSQL (several nodes, issue 27) the wrong passwords and the record budgets are counted on every
  node together as well (storage/counts.py: one short statement per refused request, never for a proved
  one); when that count does not answer within 0.1 s the node's own count decides.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque

from boothgate import errors
from boothgate.booth.throttle import Throttle, client_key
from boothgate.operator.credentials import Credentials
from boothgate.storage.counts import SharedCounts

MB = 1024 * 1024
# Photo bytes of not-yet-authenticated uploads held in memory, all requests together.
UNPROVEN_MEMORY_BYTES = 96 * MB
MAX_ADDRESSES = 10_000
WINDOW_SECONDS = 60.0


class Strangers:
    """Shared state: the memory budget and the per-address record budget."""

    def __init__(self) -> None:
        self.held_bytes = 0
        self.unrecorded = 0  # failures not recorded because their address was over its budget
        self._records: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()  # when each record of the last minute was kept, all addresses
        self.shared: SharedCounts | None = None  # PostgreSQL: the record budgets counted by every node together

    def hold(self, size: int) -> None:
        if self.held_bytes + size > UNPROVEN_MEMORY_BYTES:
            raise errors.RateLimited(
                "Too many uploads without the upload password at once; send the password before the file.",
                code="unauthenticated_backlog",
            )
        self.held_bytes += size

    def let_go(self, size: int) -> None:
        self.held_bytes = max(0, self.held_bytes - size)

    def may_record(
        self, address: str, per_minute: int, total_per_minute: int | None = None, ipv6_prefix: int = 64
    ) -> bool:
        """Whether one more metadata record of an unauthenticated failure from `address` fits this minute,
        for its address (IPv6: its prefix) and for all addresses together."""
        now = time.monotonic()
        address = client_key(address, ipv6_prefix)
        if total_per_minute is not None:
            while self._all and now - self._all[0] > WINDOW_SECONDS:
                self._all.popleft()
            if len(self._all) >= total_per_minute:
                self.unrecorded += 1
                return False
        times = self._records.get(address)
        if times is None:
            times = self._records[address] = deque()
        self._records.move_to_end(address)
        while times and now - times[0] > WINDOW_SECONDS:
            times.popleft()
        while len(self._records) > MAX_ADDRESSES:
            self._records.popitem(last=False)
        if len(times) >= per_minute:
            self.unrecorded += 1
            return False
        times.append(now)
        self._all.append(now)
        return True

    async def may_record_everywhere(
        self, address: str, per_minute: int, total_per_minute: int | None = None, ipv6_prefix: int = 64
    ) -> bool:
        """`may_record`, with the budgets counted on every node together when there is a shared count (this
        node's count is kept all the same: it decides whenever the shared one does not answer in time)."""
        here = self.may_record(address, per_minute, total_per_minute, ipv6_prefix)
        if self.shared is None:
            return here
        everywhere = await self._fits_everywhere(client_key(address, ipv6_prefix), per_minute, total_per_minute)
        if everywhere is None or everywhere == here:
            return here
        self.unrecorded += -1 if everywhere else 1  # the node's own count had decided otherwise
        return everywhere

    async def _fits_everywhere(self, key: str, per_minute: int, total_per_minute: int | None) -> bool | None:
        assert self.shared is not None
        hits = await self.shared.count(f"records:{key}")
        if hits is None or hits > per_minute or total_per_minute is None:
            return None if hits is None else hits <= per_minute
        total = await self.shared.count("records:*")
        return None if total is None else total <= total_per_minute


class PasswordProof:
    """One request's state: has it proved the upload password? (`booth/multipart.py` asks it.)"""

    def __init__(
        self, strangers: Strangers, credentials: Credentials, throttle: Throttle, client: str, proven: bool
    ) -> None:
        self.strangers, self.credentials, self.throttle, self.client = strangers, credentials, throttle, client
        self.proven = proven
        self._held = 0

    async def offer(self, candidate: str | None) -> None:
        """Check a password (a form field that just arrived, or the one found at the end). Raises 401."""
        if self.proven:
            return
        if self.credentials.check_upload(candidate):
            self.throttle.succeeded(self.client)
            self.proven = True
            self.release()
            return
        delay = self.throttle.delay(self.client)
        self.throttle.failed(self.client)
        locked_out = await self.throttle.failed_everywhere(self.client)  # several nodes: counted by all of them
        if delay:
            await asyncio.sleep(delay)
        if locked_out:
            raise errors.LockedOut("Too many wrong passwords from this address; wait and try again.")
        message = (
            "Wrong upload password."
            if candidate
            else "The upload password is missing (form field 'password', or '?password=' in the link)."
        )
        raise errors.Unauthorized(message)

    def hold(self, size: int) -> None:
        """Bytes kept in memory because the password has not been proved yet (photo, fields, a chunk)."""
        self.strangers.hold(size)
        self._held += size

    def let_go(self, size: int) -> None:
        """Some of what was held is no longer kept (a chunk parsed); never more than this request holds."""
        size = min(size, self._held)
        self.strangers.let_go(size)
        self._held -= size

    def release(self) -> None:
        self.strangers.let_go(self._held)
        self._held = 0
