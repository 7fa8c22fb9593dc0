"""`boothgate install-service`: a systemd unit that starts boothgate at boot and restarts it after a crash.

The unit runs this very interpreter (the project's virtualenv) in the working directory, so the `.env`
file there applies exactly as with `make run`.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

DEFAULT_UNIT_PATH = Path("/etc/systemd/system/boothgate.service")


def unit_text(python: str, workdir: Path, user: str, data_dir: Path) -> str:
    return f"""# boothgate: AI gateway for photobooths. Written by `boothgate install-service`.
# Settings: {workdir}/.env (read from the working directory) or Environment= lines below.
[Unit]
Description=boothgate AI gateway for photobooths
After=network-online.target
Wants=network-online.target
# Restart without giving up (a booth night is long; a crash loop shows in journalctl).
StartLimitIntervalSec=0

[Service]
Type=simple
User={user}
WorkingDirectory={workdir}
Environment=BOOTHGATE_DATA_DIR={data_dir}
Environment=PYTHONUNBUFFERED=1
ExecStart={python} -m boothgate serve
# Restart after a crash (and after an out-of-memory kill), a few seconds apart, without giving up.
Restart=always
RestartSec=3
# A stop is graceful: SIGTERM goes to the server alone (KillMode=mixed), which stops accepting, lets every
# booth in flight get its answer within its deadline (about 50 s at most), stops its image workers last
# and exits; whatever is left after TimeoutStopSec is killed.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=60
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full

[Install]
WantedBy=multi-user.target
"""


def default_unit(workdir: Path | None = None, user: str | None = None, data_dir: Path | None = None) -> str:
    """The unit for this checkout: this Python, this directory, this user, data in ./data."""
    workdir = (workdir or Path.cwd()).resolve()
    return unit_text(
        python=sys.executable,
        workdir=workdir,
        user=user or getpass.getuser(),
        data_dir=(data_dir or workdir / "data").resolve(),
    )


NEXT_STEPS = """Now start it, and at every boot:
  sudo systemctl daemon-reload
  sudo systemctl enable --now boothgate
See its output (banner, passwords on first start):  journalctl -u boothgate -f"""
