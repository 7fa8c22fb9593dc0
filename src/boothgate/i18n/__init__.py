"""The UI's strings: one catalogue per language (`ru.json`, `en.json`), the same keys in each.

Templates call `t("key", name=value)`; the pages hand the whole catalogue to the JavaScript too, so
every string the operator reads lives in these two files. Russian is the default language.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES: tuple[str, ...] = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
_HERE = Path(__file__).parent

Translate = Callable[..., str]


@cache
def catalogue(language: str) -> dict[str, str]:
    """All strings of one language (falls back to the default language for unknown codes)."""
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    strings: dict[str, str] = json.loads((_HERE / f"{language}.json").read_text(encoding="utf-8"))
    return strings


def translator(language: str) -> Translate:
    """`t(key, **params)`: the string for `key` with `{param}` placeholders filled in.

    A missing key shows as `_default` when given (e.g. a setting's English description), else as the
    key itself, so a gap is visible on the page instead of a blank.
    """
    strings = catalogue(language)

    def t(key: str, _default: str | None = None, **params: Any) -> str:
        text = strings.get(key, key if _default is None else _default)
        for name, value in params.items():
            text = text.replace("{" + name + "}", str(value))
        return text

    return t


def lookup(language: str, key: str) -> str | None:
    """The string for `key`, or None when the catalogue has none (for optional translations)."""
    return catalogue(language).get(key)
