"""The start banner: where the UI is and which addresses a booth on the venue's network can use.

A booth PC on the same Wi-Fi cannot reach `localhost`; the operator needs this machine's LAN address,
so the banner lists every IPv4 address of the machine when the server listens on all interfaces.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import sys

SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


def _linux_interface_addresses() -> list[str]:
    """Each interface's IPv4 address (Linux). `getaddrinfo(hostname)` often only knows 127.0.1.1."""
    if not sys.platform.startswith("linux"):
        return []
    import fcntl

    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
            except OSError:  # an interface without an IPv4 address
                continue
            found.append(socket.inet_ntoa(answer[20:24]))
    return found


def _hostname_addresses() -> list[str]:
    """What the system resolver knows for this host's name (the usual way on Windows and macOS)."""
    with contextlib.suppress(OSError, UnicodeError):
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        return [str(info[4][0]) for info in infos]
    return []


def _route_address() -> list[str]:
    """The address the default route leaves from. A UDP connect sends no packet."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never contacted, only routed
        return [str(probe.getsockname()[0])]
    return []


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses a booth could use: no loopback, no link-local, no duplicates."""
    seen: list[str] = []
    for address in [*_linux_interface_addresses(), *_hostname_addresses(), *_route_address()]:
        try:
            parsed = ipaddress.IPv4Address(address)
        except ValueError:
            continue
        if parsed.is_loopback or parsed.is_link_local or parsed.is_unspecified or address in seen:
            continue
        seen.append(address)
    return seen


def listen_addresses(host: str) -> list[str]:
    """The hosts to show for a listen address: every LAN address for 0.0.0.0, else the host itself."""
    if host in ("0.0.0.0", "::", ""):
        return lan_addresses()
    if host in ("127.0.0.1", "localhost", "::1"):
        return []
    return [host]


def banner(
    host: str,
    port: int,
    public_base_url: str = "",
    version: str = "",
    admin: tuple[str, str] | None = None,
    upload_password: str | None = None,
    admin_user: str = "admin",
    admin_from_env: bool = False,
) -> str:
    """The lines printed at every start; credentials only when they were generated just now."""
    local = f"http://localhost:{port}" if host in ("0.0.0.0", "::", "", "127.0.0.1", "localhost") else None
    network = [f"http://{address}:{port}" for address in listen_addresses(host)]
    lines = ["", "=" * 72, f"  boothgate {version} is running".rstrip()]
    ui = network[0] if network else (local or f"http://{host}:{port}")
    lines.append(f"  Admin UI:        {ui}/")
    if local and network:
        lines.append(f"                   {local}/  (on this machine)")
    if public_base_url:
        lines.append(f"  Public address:  {public_base_url}  (upload links and Turbotext use it)")
    if network:
        lines.append("  Booth upload links on this network:")
        lines += [f"    {address}/booth/<tab>/<slot>   e.g. {address}/booth/gemini/1" for address in network]
    elif local:
        lines.append(f"  Only this machine can connect ({host}); set BOOTHGATE_HOST=0.0.0.0 for booth PCs.")
    if admin:
        lines.append(f"  Admin login:     {admin[0]} / {admin[1]}")
    if upload_password:
        lines.append(f"  Upload password: {upload_password}")
    if admin or upload_password:
        lines.append("  These are shown only now; the upload password is also in Statistics.")
        lines.append("  Lost the admin password? boothgate reset-admin-password")
    else:  # a restart: say where the credentials are rather than nothing (issue 22)
        where = "BOOTHGATE_ADMIN_PASSWORD" if admin_from_env else "the one printed at the first start"
        lines.append(f"  Admin user:      {admin_user} / {where}")
        lines.append("                   (lost it? boothgate reset-admin-password)")
        lines.append("  Booths' upload password: in the admin UI, Statistics (top right).")
    lines += ["=" * 72, ""]
    return "\n".join(lines)
