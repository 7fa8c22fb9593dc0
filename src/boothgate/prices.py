"""Price and model tables read by prefix: parsing the operator's JSON tables (model-id prefix → value) and
looking a price up by image size or by OpenAI's quality and size. Data helpers only; the tables' defaults
and the settings that hold them are in settings.py."""

from __future__ import annotations

import json
import re
from typing import Any


def _json_object(text: str, what: str) -> dict[str, Any]:
    """The operator's JSON table (empty text: none), or ValueError in plain words."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ValueError(f'must be JSON, e.g. {{"model-prefix": ...}} ({exc})') from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object: model-id prefix → {what}")
    return value


def prefix_map(text: str, kind: type) -> dict[str, Any]:
    """A JSON object of model-id prefix → value, checked; raises ValueError in plain words."""
    value = _json_object(text, "value")
    for key, item in value.items():
        ok = (
            _is_price(item) or (isinstance(item, dict) and bool(item) and all(_is_price(v) for v in item.values()))
            if kind is float
            else (isinstance(item, list) and all(isinstance(x, str) for x in item))
        )
        if not ok:
            expected = (
                'a price in USD (0 or more), or prices by image size such as {"1K": 0.03, "4K": 0.07}'
                if kind is float
                else 'a list such as ["1K", "2K"]'
            )
            raise ValueError(f"{key!r}: must be {expected}")
    return value


def _is_price(item: object) -> bool:
    return isinstance(item, int | float) and not isinstance(item, bool) and item >= 0


def sized_price(entry: Any, size: str | None) -> float | None:
    """A price-table entry (one number, or {"1K": …, "4K": …}) for an image size; a size not named costs
    what the largest named size below it costs (else the smallest named)."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        return float(entry)
    if size in entry:
        return float(entry[size])
    order = sorted(entry, key=lambda k: (len(k), k))
    below = [k for k in order if size and (len(k), k) <= (len(size), size)]
    return float(entry[(below or order)[-1 if below else 0]])


def openai_price_map(text: str) -> dict[str, Any]:
    """The OpenAI price table (model-id prefix → USD, or quality → USD or {WIDTHxHEIGHT: USD}), checked."""
    table = _json_object(text, "prices")
    for model, entry in table.items():
        if _is_price(entry):
            continue
        ok = isinstance(entry, dict) and all(
            _is_price(v) or (isinstance(v, dict) and bool(v) and all(_is_price(p) for p in v.values()))
            for v in entry.values()
        )
        if not ok:
            raise ValueError(
                f"{model!r}: must be a price in USD, or prices by quality and size such as "
                '{"low": {"1024x1024": 0.006, "1536x1024": 0.005}, "high": 0.2}'
            )
    return table


def _pixels(size: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", size or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def openai_price(entry: Any, quality: str, size: str | None) -> float | None:
    """An OpenAI price-table entry for an image of `quality` at `size` (WIDTHxHEIGHT); None when the table
    does not price that quality. A size the table does not name (a free size) costs what the named size with
    the nearest pixel count costs; an unknown size the dearest named one (an estimate never under-counts)."""
    if entry is None or _is_price(entry):
        return None if entry is None else float(entry)
    by_size = entry.get(quality) if isinstance(entry, dict) else None
    if by_size is None or _is_price(by_size):
        return None if by_size is None else float(by_size)
    if size in by_size:
        return float(by_size[size])
    wanted = _pixels(size or "")
    named = {k: p for k in by_size if (p := _pixels(k)) is not None}
    if wanted is None or not named:
        return float(max(by_size.values()))
    area = wanted[0] * wanted[1]
    nearest = min(named, key=lambda k: (abs(named[k][0] * named[k][1] - area), -float(by_size[k])))
    return float(by_size[nearest])


def by_prefix(table: dict[str, Any], model: str) -> Any:
    """The value of the longest prefix of `model` in `table`, or None when none matches."""
    model = model.strip().removeprefix("models/")
    matches = [prefix for prefix in table if model.startswith(prefix)]
    return table[max(matches, key=len)] if matches else None
