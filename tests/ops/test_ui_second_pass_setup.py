"""Issue 22, item 10: a clean install prints no expected red error; a restart says where the credentials are."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from boothgate.ops.banner import banner

SCRIPT = Path(__file__).parents[2] / "scripts" / "pip_install.py"
spec = importlib.util.spec_from_file_location("pip_install", SCRIPT)
assert spec is not None and spec.loader is not None
pip_install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pip_install)

HEADER = (
    "ERROR: pip's dependency resolver does not currently take into account all the packages that are "
    "installed. This behaviour is the source of the following dependency conflicts.\n"
)
KNOWN = (
    "mediapipe 0.10.21 requires jax, which is not installed.\n"
    "mediapipe 0.10.21 requires jaxlib, which is not installed.\n"
    "mediapipe 0.10.21 requires sentencepiece, which is not installed.\n"
    "mediapipe 0.10.21 requires sounddevice>=0.4.4, which is not installed.\n"
)


def test_the_known_mediapipe_block_is_left_out_of_a_green_install() -> None:
    notice = "[notice] A new release of pip is available\n"
    assert pip_install.clean(HEADER + KNOWN + notice) == notice
    assert pip_install.clean(HEADER + KNOWN) == ""


def test_any_other_conflict_is_still_printed_with_pips_header() -> None:
    real = "mediapipe 0.10.21 requires protobuf<5,>=4.25.3, but you have protobuf 6.1 which is incompatible.\n"
    other = "httpx 0.28.1 requires idna, which is not installed.\n"
    cleaned = pip_install.clean(HEADER + KNOWN + real + other)
    assert cleaned == HEADER + real + other
    assert pip_install.clean("ERROR: No matching distribution found for nope\n") == (
        "ERROR: No matching distribution found for nope\n"
    )


def test_the_makefile_installs_through_the_wrapper() -> None:
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert "PIP_INSTALL := $(BIN)/python scripts/pip_install.py" in makefile


def test_a_restart_banner_says_where_the_credentials_are() -> None:
    restarted = banner("0.0.0.0", 8011, "", "9.9", admin_user="operator")
    assert "Admin user:      operator / the one printed at the first start" in restarted
    assert "Admin login:" not in restarted  # that line is only for credentials generated just now
    assert "boothgate reset-admin-password" in restarted
    assert "upload password: in the admin UI, Statistics" in restarted
    from_env = banner("0.0.0.0", 8011, "", "9.9", admin_user="operator", admin_from_env=True)
    assert "operator / BOOTHGATE_ADMIN_PASSWORD" in from_env
    first = banner("0.0.0.0", 8011, "", "9.9", ("admin", "pw-123"), "up-456")
    assert "the one printed at the first start" not in first and "admin / pw-123" in first
