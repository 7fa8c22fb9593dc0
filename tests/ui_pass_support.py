"""Shared by the operator-UI tests (issue 22): the address a booth can reach, as the cards show it."""

from __future__ import annotations

from boothgate.ops.banner import lan_addresses


def booth_base(opened_at: str) -> str:
    """The base of the upload links a card opened at `opened_at` (a loopback URL of a server listening on
    every interface, as in the tests) shows: this machine's LAN address at the same port, if it has one."""
    lan = lan_addresses()
    port = opened_at.rsplit(":", 1)[1]
    return f"http://{lan[0]}:{port}" if lan else opened_at
