"""Shared dependencies: the services of the running app, and admin access (Basic Auth + same-origin)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request

from boothgate.operator import tab_bar
from boothgate.operator.credentials import HashingBusy
from boothgate.ops import banner
from boothgate.runtime import Services

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def same_origin(request: Request) -> bool:
    """A browser's state-changing request must come from our own pages.

    Browsers send Origin on cross-site POST/PUT/DELETE (and Sec-Fetch-Site); scripts like curl send
    neither and are allowed, since they must present the credentials explicitly.
    """
    if request.headers.get("sec-fetch-site", "") in ("cross-site", "same-site"):
        return False
    host = request.headers.get("host", "")
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value is None:
            continue
        if value == "null":
            return False
        return urlsplit(value).netloc == host
    return True


async def require_admin(request: Request, services: ServicesDep) -> str:
    address = client_address(request)
    throttle = services.admin_throttle
    retry_after = throttle.retry_after(address)
    if retry_after is not None:
        raise _locked_out(retry_after)
    credentials = _basic_credentials(request)
    try:
        signed_in = credentials is not None and await services.credentials.check_admin(*credentials)
    except HashingBusy:  # checked nothing: the password hashing's global rate is used up (issue 31, class 12)
        raise HTTPException(429, "Too many sign-in attempts right now; try again in a moment.",
                            headers={"Retry-After": "1"}) from None  # fmt: skip
    if credentials is None or not signed_in:
        delay = throttle.delay(address)
        everywhere = False
        if credentials is not None:
            throttle.failed(address)
            # Several nodes on PostgreSQL: counted by all of them; past the allowance there, 429 (bounded wait).
            everywhere = await throttle.failed_everywhere(address)
        if delay:
            await asyncio.sleep(delay)
        if everywhere:
            raise _locked_out(throttle.retry_after(address) or throttle.lockout_seconds)
        raise HTTPException(401, "Sign in with the admin user name and password.", headers=_challenge())
    throttle.succeeded(address)
    if request.method in UNSAFE_METHODS and not same_origin(request):
        raise HTTPException(403, "Cross-site request refused.")
    if getattr(request.app.state, "hidden_tabs", None) is None:  # once per process: the bar's hidden tabs
        request.app.state.hidden_tabs = await tab_bar.hidden_tabs(services.db, services.registry.tabs)
    return credentials[0]


def hidden_tabs(request: Request) -> list[str]:
    """The tabs the operator hid from the bar and the statistics (loaded by `require_admin`)."""
    return list(getattr(request.app.state, "hidden_tabs", None) or [])


def _locked_out(retry_after: float) -> HTTPException:
    return HTTPException(
        429, "Too many wrong passwords; try again later.", headers={"Retry-After": str(int(retry_after) + 1)}
    )


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Basic realm="boothgate", charset="UTF-8"'}


AdminUser = Annotated[str, Depends(require_admin)]


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
ALL_INTERFACES = frozenset({"0.0.0.0", "::", ""})


def booth_address(request: Request, services: Services) -> tuple[str, str]:
    """The address a booth can reach, and where it came from: "public" (the public base URL), "lan" (this
    machine's LAN address, when the UI was opened at localhost on a server listening on every interface),
    "request" (the address the page was opened at, reachable as it is), or "loopback" (only this machine
    can connect: the server listens on loopback, or the machine has no LAN address)."""
    settings = services.settings
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/"), "public"
    here = str(request.base_url).rstrip("/")
    if (request.url.hostname or "") not in LOOPBACK_HOSTS:
        return here, "request"
    if settings.host in ALL_INTERFACES:
        found = banner.lan_addresses()
        if found:
            port = request.url.port or settings.port
            return f"{request.url.scheme}://{found[0]}:{port}", "lan"
    return here, "loopback"


def base_url(request: Request, services: Services) -> str:
    """The address booths use in links (see `booth_address`), whatever address the UI was opened at."""
    return booth_address(request, services)[0]
