"""Passwords in upload links: accepted in the query, masked wherever a URL is written down.

Booths without a password box (Breeze Booth, Hotfolder) get the upload password in the link they are
given: `/booth/gemini/1?password=...` (or `?key=...`). uvicorn's access log prints paths with their
query, so every recorded URL goes through `mask_query` first; the access logger gets a filter that
masks its path argument before any handler formats it (also the paths that are secrets themselves:
Turbotext's webhook address and the short-lived media links).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

# Query parameters that carry the upload password (or any other secret) in a link.
PASSWORD_PARAMS = ("password", "key")
SECRET_PARAMS = frozenset({"password", "key", "api_key", "apikey", "token", "access_token"})
MASK = "***"
_QUERY_SECRET = re.compile(
    r"(?P<lead>[?&;](?:" + "|".join(sorted(SECRET_PARAMS)) + r")=)[^&#;\s\"']*",
    re.IGNORECASE,
)


# Paths that are secrets themselves: the webhook address given to Turbotext and the short-lived media links.
_SECRET_PATH = re.compile(r"(?P<lead>/(?:hooks/[A-Za-z0-9_-]+|media)/)[^/?#\s\"']+")


def mask_query(text: str) -> str:
    """`/booth/gemini/1?password=abc&style=noir` → `/booth/gemini/1?password=***&style=noir`."""
    if "=" not in text:
        return text
    return _QUERY_SECRET.sub(lambda m: m.group("lead") + MASK, text)


def mask_path(path: str) -> str:
    """A request path as the access log may print it: secret query values and secret path parts masked."""
    return mask_query(_SECRET_PATH.sub(lambda m: m.group("lead") + MASK, path))


def query_password(query: Mapping[str, str]) -> str | None:
    """The upload password given in the link's query (`password` first, then `key`), or None."""
    lowered = {name.lower(): value for name, value in query.items()}
    for name in PASSWORD_PARAMS:
        value = lowered.get(name)
        if value:
            return value
    return None


def public_query(query: Mapping[str, str]) -> dict[str, str]:
    """The link's query as job metadata may keep it: without secret parameters."""
    return {name: value for name, value in query.items() if name.lower() not in SECRET_PARAMS}


class AccessLogMask(logging.Filter):
    """Masks secrets in uvicorn access records, whose args are (client, method, path, version, status).

    Works on the argument in place (the access formatter unpacks the args tuple, so the message cannot
    be replaced by a finished string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(mask_path(a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str):
            record.msg = mask_path(record.msg)
        return True


ACCESS_MASK = AccessLogMask()


def install() -> None:
    """Attach the mask to the access logger itself (logger filters run before any handler's)."""
    logger = logging.getLogger("uvicorn.access")
    if ACCESS_MASK not in logger.filters:
        logger.addFilter(ACCESS_MASK)
