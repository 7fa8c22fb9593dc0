"""Keep secrets out of the logs, whatever a library puts into a message or a traceback.

The code never logs a password or a key on purpose; this is the second line: a logging filter on
every handler that replaces each known secret (upload password, admin password, provider API keys)
with `***` in the message and in the formatted traceback. An SDK exception that quotes a request URL
with `?key=...`, logged by the spine's catch-all, leaves the key behind.

The same filter escapes control characters (CR, LF, NUL, ...) in every log *field* (the arguments of a
log call, never the format string or a traceback): a booth URL like `/booth/gemini%0ajob=...` must not
start a forged line of its own in the log (issue 14).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from boothgate.link_secrets import mask_query
from boothgate.settings import Settings

MIN_SECRET_LENGTH = 4  # shorter values would blank out ordinary words and numbers
MASK = "***"
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators: anything a log reader may
# take as the end of a line or an instruction to the terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_field(value: str) -> str:
    """`value` with each control character written as a visible escape (`\\n`, `\\x00`)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], value)


def _escaped(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    if _CONTROL.search(text) is None:
        return value
    return escape_field(text)


class SecretFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def protect(self, *values: str | SecretStr | None) -> None:
        for value in values:
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if text and len(text) >= MIN_SECRET_LENGTH:
                self._secrets.add(text)

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):  # longest first: no partial leftovers
            text = text.replace(secret, MASK)
        return mask_query(text)  # a wrong password in a link is no known secret, but still one

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            if isinstance(record.args, Mapping):
                record.args = {k: _escaped(v) for k, v in record.args.items()}
            else:
                record.args = tuple(_escaped(a) for a in record.args)
        message = record.getMessage()
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is scrubbed once, here.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


REDACTOR = SecretFilter()


def protect_settings(settings: Settings) -> None:
    """Register every secret setting (passwords and API keys) with the filter."""
    secrets = [value for value in settings.__dict__.values() if isinstance(value, SecretStr)]
    REDACTOR.protect(*secrets)
    # Lists of keys (BOOTHGATE_<PROVIDER>_API_KEYS): each key on its own, as it appears in a request.
    parts = [p.strip() for s in secrets if "," in s.get_secret_value() for p in s.get_secret_value().split(",")]
    REDACTOR.protect(*(SecretStr(p) for p in parts if p))


def install() -> None:
    """Attach the filter to the handlers of the root and uvicorn loggers (idempotent)."""
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if REDACTOR not in handler.filters:
                handler.addFilter(REDACTOR)
