"""Prompt variables: `{name}` and `{name|default}` in a slot prompt, filled per photo.

Booth programs pass survey answers, QR values and URL tokens (`surveyN_type_id`, `{qr1}`, `?style=`);
one slot prompt such as `a {style|watercolour} portrait` then serves every style. Values come from the
booth's form fields and the upload link's query (the query wins: the operator wrote it into the link),
names match case-insensitively, and a field may carry braces in its own name (Breeze Booth's `{qr1}`).

A value is text typed by a guest or a booth: trimmed, stripped of control characters and cut to
`MAX_VALUE_CHARS`, so it cannot smuggle a newline-led instruction block or a megabyte into the prompt.
Secret fields (the upload password) are never offered as values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_VALUE_CHARS = 200
# `{name}` or `{name|default}`: a name is letters, digits, `_`, `-` or `.`; a default is anything up to
# the closing brace. Doubled braces (`{{name}}`, Simple Booth's style) match on the inner pair.
_NAME = r"\s*([A-Za-z0-9_.\-]{1,64})\s*(?:\|([^{}]*))?"
PATTERN = re.compile(r"\{\{" + _NAME + r"\}\}|\{" + _NAME + r"\}")


@dataclass
class Filled:
    prompt: str
    used: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    defaulted: list[str] = field(default_factory=list)


def names(prompt: str) -> list[str]:
    """The placeholders of a prompt in order of first appearance (as written, without duplicates)."""
    seen: dict[str, str] = {}
    for match in PATTERN.finditer(prompt or ""):
        name, _ = _parts(match)
        seen.setdefault(name.lower(), name)
    return list(seen.values())


def clean_value(value: str) -> str:
    """Trimmed, without control characters (newlines, tabs, escapes become spaces), at most 200 chars."""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in value)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:MAX_VALUE_CHARS].strip()


def _key(name: str) -> str:
    return name.strip().strip("{}").strip().lower()


def values(fields: Mapping[str, str], query: Mapping[str, str], secret: Iterable[str] = ()) -> dict[str, str]:
    """The values placeholders may take: form fields, then the query over them; never a secret field."""
    hidden = {s.lower() for s in secret}
    out: dict[str, str] = {}
    for source in (fields, query):
        for name, value in source.items():
            key = _key(name)
            if key and key not in hidden and isinstance(value, str):
                out[key] = clean_value(value)
    return out


def fill(prompt: str, available: Mapping[str, str]) -> Filled:
    """The prompt with every placeholder replaced; what was used, defaulted and missing."""
    result = Filled(prompt="")

    def replace(match: re.Match[str]) -> str:
        name, default = _parts(match)
        value = available.get(name.lower(), "")
        if value:
            result.used[name] = value
            return value
        if default is not None:
            if name not in result.defaulted:
                result.defaulted.append(name)
            return clean_value(default)
        if name not in result.missing:
            result.missing.append(name)
        return ""

    text = PATTERN.sub(replace, prompt or "")
    # An empty placeholder leaves a double space ("a  portrait"); tidy it, keep line breaks.
    result.prompt = re.sub(r"[ \t]{2,}", " ", text).strip()
    return result


def _parts(match: re.Match[str]) -> tuple[str, str | None]:
    """(name, default or None) of a `{{name|default}}` or `{name|default}` match."""
    if match.group(1) is not None:
        return match.group(1), match.group(2)
    return match.group(3), match.group(4)
