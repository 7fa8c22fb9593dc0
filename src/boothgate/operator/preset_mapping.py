"""Where a preset's slots land when it is imported: the file says `gemini/1`, but the event it is
imported into may use `gemini/5` and `gemini/6`. The rule, in order:

1. an explicit mapping (`?mapping=gemini/1:gemini/5,local/3:local/1`) places the slots it names;
2. into an event, a slot whose own address is one of the event's slots stays there (re-importing an
   event's own preset changes no address); the file's remaining slots of each tab go onto the event's
   slots of the same tab that no slot has taken yet, both in number order (file gemini/1, gemini/2 →
   event gemini/5, gemini/6);
3. what is left keeps the address written in the file (and joins the event), unless another slot of
   the file already goes there — then the operator must give a mapping.

A slot never changes tab: its options, kind and models belong to the tab's provider. A fallback that
names a slot of the same file follows it to its new address; one that names a slot outside the file
keeps its address. Pure functions: PresetInvalid for what an operator must fix, nothing is read.
"""

from __future__ import annotations

from typing import Any

from boothgate.run import fallback_rules

MAX_MAPPING = 200


class MappingInvalid(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _key(value: str, tabs: list[str], what: str) -> str:
    target = fallback_rules.parse(value)
    if target is None or target[0] not in tabs:
        raise MappingInvalid(f"{value.strip()[:40]!r} in the mapping is not {what} (write it as provider/number).")
    return f"{target[0]}/{target[1]}"


def _order(key: str) -> tuple[str, int]:
    tab, number = key.split("/")
    return tab, int(number)


def parse_mapping(raw: str | None, tabs: list[str]) -> dict[str, str]:
    """`gemini/1:gemini/5,local/3:local/1` → {"gemini/1": "gemini/5", "local/3": "local/1"}."""
    mapping: dict[str, str] = {}
    if not raw or not raw.strip():
        return mapping
    pairs = [p for p in raw.split(",") if p.strip()]
    if len(pairs) > MAX_MAPPING:
        raise MappingInvalid(f"The mapping names more than {MAX_MAPPING} slots.")
    for pair in pairs:
        source, sep, target = pair.partition(":")
        if not sep:
            raise MappingInvalid(
                f"{pair.strip()[:40]!r}: write each pair as file-slot:target-slot, e.g. gemini/1:gemini/5."
            )
        src, dst = _key(source, tabs, "a slot"), _key(target, tabs, "a slot of this server")
        if src in mapping:
            raise MappingInvalid(f"The mapping names {src} twice.")
        mapping[src] = dst
    return mapping


def plan(file_slots: list[str], event_slots: list[str] | None, explicit: dict[str, str]) -> dict[str, str]:
    """Every slot of the file → the slot it is written to (see the module's rule)."""
    unknown = [k for k in explicit if k not in file_slots]
    if unknown:
        raise MappingInvalid(f"The mapping names {', '.join(unknown)}, which the preset file does not contain.")
    placed: dict[str, str] = {}
    for source, target in explicit.items():
        if _order(source)[0] != _order(target)[0]:
            raise MappingInvalid(
                f"{source} cannot go to {target}: a slot keeps its tab (its options belong to the tab's provider)."
            )
        placed[source] = target
    taken = set(placed.values())
    for source in file_slots:
        if source not in placed and source in (event_slots or []) and source not in taken:
            placed[source] = source
            taken.add(source)
    free = sorted((k for k in (event_slots or []) if k not in taken), key=_order)
    for source in sorted((k for k in file_slots if k not in placed), key=_order):
        tab = _order(source)[0]
        onto = next((k for k in free if _order(k)[0] == tab), None)
        if onto is not None:
            free.remove(onto)
            placed[source] = onto
    for source in (k for k in file_slots if k not in placed):
        placed[source] = source  # no slot of the event left on its tab: the file's own address
    targets = list(placed.values())
    twice = sorted({t for t in targets if targets.count(t) > 1}, key=_order)
    if twice:
        raise MappingInvalid(
            f"Two slots of the file would be written to {', '.join(twice)}: give a mapping "
            "(?mapping=file-slot:target-slot,…) or add more slots of that tab to the event."
        )
    return {k: placed[k] for k in file_slots}


def moved_fallback(value: str | None, placed: dict[str, str]) -> str | None:
    """A fallback naming a slot of the same file follows that slot; any other keeps its address."""
    if not value:
        return value
    target = fallback_rules.parse(value)
    if target is None:
        return value  # the fallback check words what is wrong with it
    return placed.get(f"{target[0]}/{target[1]}", value)


def describe(placed: dict[str, str]) -> list[dict[str, Any]]:
    return [{"from": source, "to": target} for source, target in placed.items()]
