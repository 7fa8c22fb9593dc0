"""Share tokens and public addresses."""

from __future__ import annotations

import ipaddress
import re
import secrets
from urllib.parse import urlsplit

TOKEN_BYTES = 24  # 192 random bits (≥ 128 asked), 32 URL-safe characters
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")


def new_token() -> str:
    """A fresh random token: from the OS's CSPRNG, never derived from a job id."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def well_formed(token: str) -> bool:
    return bool(TOKEN_PATTERN.match(token))


def page_url(base_url: str, token: str) -> str:
    """The guest page's address (absolute with BOOTHGATE_PUBLIC_BASE_URL; a path without it)."""
    return f"{base_url.rstrip('/')}/p/{token}"


def gallery_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/g/{token}"


def reach_problem(base_url: str) -> str | None:
    """Why a guest's phone (on mobile data) cannot open pages at this address, or None when it can.

    "unset" (no public address), "localhost" (this machine only), "lan" (a private network address or a
    `.local`/`.lan` name: only phones on the venue's Wi-Fi)."""
    if not base_url:
        return "unset"
    host = (urlsplit(base_url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith(".localhost"):
        return "localhost"
    if host.endswith((".local", ".lan", ".home", ".internal")):
        return "lan"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None if "." in host else "lan"  # a bare name ("boothpc") resolves only inside the venue
    if address.is_loopback or address.is_unspecified:
        return "localhost"
    if address.is_private or address.is_link_local:
        return "lan"
    return None
