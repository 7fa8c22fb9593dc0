"""Setting up and running: `make run` on the configured port, the start banner with this machine's LAN
addresses, `boothgate reset-admin-password`, and the systemd unit checked by `systemd-analyze verify`."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.main import main
from boothgate.ops.banner import banner, lan_addresses
from tests.conftest import ADMIN
from tests.fakes.server import free_port

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "deploy" / "systemd" / "boothgate.service"


def ip_addresses() -> list[str]:
    """This machine's IPv4 addresses as iproute2 reports them (an independent witness for the banner)."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed: nothing to compare the banner with")
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return [a for a in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out) if not a.startswith("127.")]


def run_make(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """`make run` as the README says, in its own process group; returns once /health answers."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTHGATE_") and k not in ("PORT", "HOST")}
    full_env.update({"BOOTHGATE_DATA_DIR": str(tmp_path / "data"), "MAKEFLAGS": "", **env})
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return process, ""


def wait_for_health(process: subprocess.Popen[str], port: int) -> None:
    started = time.monotonic()
    while time.monotonic() - started < 60:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("make run did not answer on the configured port")


def stop(process: subprocess.Popen[str]) -> str:
    os.killpg(process.pid, signal.SIGTERM)  # make and the server it started (our own process group)
    out, _ = process.communicate(timeout=30)
    return out


def test_make_run_serves_on_boothgate_port_and_prints_the_lan_banner(tmp_path: Path) -> None:
    port = free_port()
    process, _ = run_make(tmp_path, {"BOOTHGATE_PORT": str(port)})
    try:
        wait_for_health(process, port)
        login = httpx.get(f"http://127.0.0.1:{port}/settings", timeout=5)
        assert login.status_code == 401  # the admin UI is there, behind its password
    finally:
        printed = stop(process)
    assert "Admin UI:" in printed
    for address in ip_addresses():  # every LAN address of this machine, with the port
        assert f"http://{address}:{port}/booth/" in printed, printed
    assert f"http://localhost:{port}/" in printed
    # the first start prints generated credentials, and they work
    admin_password = printed.split("Admin login:")[1].split("/")[1].split()[0]
    assert "Upload password:" in printed
    process, _ = run_make(tmp_path, {"BOOTHGATE_PORT": str(port)})
    try:
        wait_for_health(process, port)
        page = httpx.get(f"http://127.0.0.1:{port}/settings", auth=("admin", admin_password), timeout=5)
        assert page.status_code == 200
    finally:
        again = stop(process)
    assert "Admin login:" not in again and f":{port}/booth/" in again, "the banner comes at every start"


def test_make_run_port_wins_and_boothgate_host_is_honoured(tmp_path: Path) -> None:
    port = free_port()
    process, _ = run_make(tmp_path, {"BOOTHGATE_PORT": "1", "BOOTHGATE_HOST": "127.0.0.1"}, f"PORT={port}")
    try:
        wait_for_health(process, port)
    finally:
        printed = stop(process)
    assert f"http://localhost:{port}/" in printed
    assert "Only this machine can connect" in printed


def _kernel_addresses() -> list[str]:
    """The machine's global IPv4 addresses as `ip` lists them: an oracle apart from the banner's own lookup."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if not os.path.exists(ip):
        pytest.skip("no `ip` command to list this machine's addresses")
    listed = subprocess.run([ip, "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True)
    return re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", listed.stdout)


def test_banner_lists_lan_addresses_and_credentials_once() -> None:
    text = banner("0.0.0.0", 8011, "", "9.9", ("admin", "pw-123"), "up-456")
    addresses = _kernel_addresses()
    if not addresses:
        pytest.skip("this machine has no LAN address for the banner to list")
    for address in addresses:
        assert f"http://{address}:8011/booth/gemini/1" in text, address
    assert set(lan_addresses()) >= set(addresses)
    assert text.count("admin / pw-123") == 1 and text.count("up-456") == 1, "the credentials once each"
    quiet = banner("0.0.0.0", 8011, "https://photo.example.com")
    assert "pw-" not in quiet and "Upload password" not in quiet
    assert "https://photo.example.com" in quiet


# --- reset-admin-password ------------------------------------------------------------------------------


def _serve_and_check(data_dir: Path, password: str) -> tuple[int, int]:
    """Start boothgate on that data folder; the status of the new password and of the old one."""
    from boothgate.web.app import create_app
    from tests.conftest import booth_settings
    from tests.fakes.server import serve

    settings = booth_settings(data_dir.parent, admin_password=None)
    with serve(create_app(settings, {})) as url:
        new = httpx.get(f"{url}/settings", auth=("admin", password), timeout=5).status_code
        old = httpx.get(f"{url}/settings", auth=ADMIN, timeout=5).status_code
    return new, old


async def test_reset_admin_password_generates_prints_and_takes_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("BOOTHGATE_DATA_DIR", str(tmp_path / "data"))
    assert await asyncio.to_thread(main, ["reset-admin-password"]) == 0
    printed = capsys.readouterr().out
    generated = printed.split("Admin login: admin / ")[1].split()[0]
    assert len(generated) >= 12 and "Restart boothgate" in printed
    assert await asyncio.to_thread(_serve_and_check, tmp_path / "data", generated) == (200, 401)

    assert await asyncio.to_thread(main, ["reset-admin-password", "--password", "my-own-password-1"]) == 0
    assert "my-own-password-1" not in capsys.readouterr().out, "a given password is not echoed"
    assert await asyncio.to_thread(_serve_and_check, tmp_path / "data", "my-own-password-1") == (200, 401)

    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin-password\n"))
    assert await asyncio.to_thread(main, ["reset-admin-password", "--stdin"]) == 0
    new, _ = await asyncio.to_thread(_serve_and_check, tmp_path / "data", "from-stdin-password")
    assert new == 200
    old, _ = await asyncio.to_thread(_serve_and_check, tmp_path / "data", "my-own-password-1")
    assert old == 401


async def test_reset_admin_password_refuses_short_or_env_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("BOOTHGATE_DATA_DIR", str(tmp_path / "data"))
    assert await asyncio.to_thread(main, ["reset-admin-password", "--password", "short"]) == 2
    monkeypatch.setenv("BOOTHGATE_ADMIN_PASSWORD", "from-the-environment")
    assert await asyncio.to_thread(main, ["reset-admin-password"]) == 2
    assert "BOOTHGATE_ADMIN_PASSWORD" in capsys.readouterr().err


# --- systemd ------------------------------------------------------------------------------------------


def verify_unit(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is absent (Debian package systemd): only the unit check is skipped")
    return subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)


def test_install_service_writes_a_unit_that_systemd_accepts(tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "boothgate.service"
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    assert main(["install-service", "--output", str(target), "--workdir", str(workdir), "--user", "root"]) == 0
    text = target.read_text()
    assert f"ExecStart={sys.executable} -m boothgate serve" in text
    assert f"WorkingDirectory={workdir}" in text and "Restart=always" in text
    assert "WantedBy=multi-user.target" in text
    checked = verify_unit(target)
    assert checked.returncode == 0 and "boothgate.service" not in checked.stderr, checked.stderr


def test_the_documented_unit_is_what_install_service_writes_and_verifies(tmp_path: Path) -> None:
    from boothgate.ops.service import unit_text

    documented = UNIT.read_text()
    assert documented == unit_text(
        "/opt/boothgate/.venv/bin/python", Path("/opt/boothgate"), "boothgate", Path("/opt/boothgate/data")
    )
    # verified with the paths and user of this machine (systemd checks that ExecStart exists)
    local = documented.replace("/opt/boothgate/.venv/bin/python", sys.executable).replace("User=boothgate", "User=root")
    copy = tmp_path / "boothgate.service"
    copy.write_text(local.replace("/opt/boothgate", str(tmp_path)))
    checked = verify_unit(copy)
    assert checked.returncode == 0 and "boothgate.service" not in checked.stderr, checked.stderr
