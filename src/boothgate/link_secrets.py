"""Passwords in upload links: accepted in the query, masked wherever a URL is written down.

Booths without a password box (Breeze Booth, Hotfolder) get the upload password in the link they are
given: `/booth/gemini/1?password=...` (or `?key=...`). uvicorn's access log prints paths with their
query, so every recorded URL goes through `mask_query` first; the access logger gets a filter that
masks its path argument before any handler formats it.
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


def mask_query(text: str) -> str:
    """`/booth/gemini/1?password=abc&style=noir` → `/booth/gemini/1?password=***&style=noir`."""
    if "=" not in text:
        return text
    return _QUERY_SECRET.sub(lambda m: m.group("lead") + MASK, text)


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
            record.args = tuple(mask_query(a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str):
            record.msg = mask_query(record.msg)
        return True


ACCESS_MASK = AccessLogMask()


def install() -> None:
    """Attach the mask to the access logger itself (logger filters run before any handler's)."""
    logger = logging.getLogger("uvicorn.access")
    if ACCESS_MASK not in logger.filters:
        logger.addFilter(ACCESS_MASK)
