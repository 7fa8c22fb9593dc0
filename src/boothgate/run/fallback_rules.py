"""What a slot's `fallback` field may name: "provider/number" of another existing slot, on any tab,
never itself, and never a chain that comes back to it (A → B → A would hand a photo round forever)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from boothgate.providers.registry import SLOTS_PER_TAB

_TARGET = re.compile(r"^([a-z][a-z0-9_]*)/(\d{1,2})$")
# More hops than there are slots means the stored chain loops (it was edited behind the UI's back).
MAX_HOPS = 200

# (provider, number) -> that slot's fallback ("" or None when it has none), or raises LookupError.
FallbackOf = Callable[[str, int], Awaitable[str | None]]


class FallbackInvalid(ValueError):
    """The operator-facing reason a fallback cannot be saved."""


def parse(value: str) -> tuple[str, int] | None:
    match = _TARGET.match(value.strip())
    if match is None:
        return None
    number = int(match.group(2))
    return (match.group(1), number) if 1 <= number <= SLOTS_PER_TAB else None


async def check(provider: str, number: int, value: str, tabs: list[str], fallback_of: FallbackOf) -> str:
    """The normalised fallback for slot provider/number, or FallbackInvalid with a plain reason."""
    target = parse(value)
    if target is None:
        raise FallbackInvalid(
            f"{value.strip()!r} is not a slot: write it as provider/number, e.g. local/1 (numbers 1–{SLOTS_PER_TAB})."
        )
    if target[0] not in tabs:
        raise FallbackInvalid(f"There is no tab {target[0]!r}; tabs: {', '.join(tabs)}.")
    if target == (provider, number):
        raise FallbackInvalid("A slot cannot be its own fallback.")
    chain = [f"{provider}/{number}", f"{target[0]}/{target[1]}"]
    current: tuple[str, int] | None = target
    while current is not None and len(chain) <= MAX_HOPS:
        try:
            following = await fallback_of(*current)
        except LookupError:
            raise FallbackInvalid(f"There is no slot {current[0]}/{current[1]}.") from None
        current = parse(following) if following else None
        if current is None:
            break
        chain.append(f"{current[0]}/{current[1]}")
        if current == (provider, number) or chain.count(chain[-1]) > 1:
            loop = " → ".join(chain)
            raise FallbackInvalid(f"That makes a loop: {loop}. Choose a slot whose fallbacks end elsewhere.")
    return f"{target[0]}/{target[1]}"
