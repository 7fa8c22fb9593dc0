"""The several-nodes recipe (deploy/cluster/): the systemd units are accepted by `systemd-analyze verify`
(with this machine's interpreter and user, as systemd checks that ExecStart exists), they order the
migration before the nodes, and the Caddyfile is valid for Debian's Caddy 2.6 with a list of nodes (and
sends a request to a node when Caddy finds none healthy)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLUSTER = Path(__file__).parents[2] / "deploy" / "cluster"


def _local_copy(name: str, folder: Path, as_name: str | None = None) -> Path:
    text = (CLUSTER / name).read_text()
    text = text.replace("/opt/boothgate/.venv/bin/python", sys.executable).replace("User=boothgate", "User=root")
    path = folder / (as_name or name)
    path.write_text(text.replace("/opt/boothgate", str(folder)))
    return path


def test_the_cluster_units_verify_and_run_the_migration_first(tmp_path: Path) -> None:
    node = (CLUSTER / "boothgate@.service").read_text()
    assert "After=network-online.target boothgate-migrate.service" in node
    assert (
        "EnvironmentFile=/etc/boothgate/cluster.env" in node and "BOOTHGATE_DATA_DIR=/var/lib/boothgate/node-%i" in node
    )
    assert "KillMode=mixed" in node and "ExecStart=/opt/boothgate/.venv/bin/python -m boothgate serve" in node
    migrate = (CLUSTER / "boothgate-migrate.service").read_text()
    assert "Type=oneshot" in migrate and "-m boothgate migrate" in migrate
    assert "BOOTHGATE_MIGRATE_ON_START=false" in (CLUSTER / "cluster.env.example").read_text()
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is absent (Debian package systemd): only the unit check is skipped")
    units = [
        _local_copy("boothgate-migrate.service", tmp_path),
        _local_copy("boothgate@.service", tmp_path, "boothgate@1.service"),
    ]
    checked = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on a bad directive too, and names the file on stderr: both are checked
    assert checked.returncode == 0 and "boothgate" not in checked.stderr, checked.stderr


def test_the_cluster_caddyfile_is_valid_with_a_list_of_nodes(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("Debian's caddy is not installed (scripts/install-test-system-deps.sh installs it)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path), "BOOTHGATE_NODES": "127.0.0.1:8001 127.0.0.1:8002"}  # fmt: skip
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(CLUSTER / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert adapted.returncode == 0, adapted.stderr
    assert '"dial":"127.0.0.1:8001"},{"dial":"127.0.0.1:8002"' in adapted.stdout  # one upstream per node
    assert '"uri":"/health"' in adapted.stdout and '"try_duration":10000000000' in adapted.stdout
    # no replay of a post that reached a node: Caddy 2.6 would send it again with an empty body
    assert "retry_match" not in adapted.stdout and "buffer_requests" not in adapted.stdout
    # no node healthy: Caddy's own 503 goes to a node anyway, to every node, with no health check of its own
    [site] = json.loads(adapted.stdout)["apps"]["http"]["servers"].values()
    [errors] = site["errors"]["routes"][0]["handle"][0]["routes"]
    assert errors["match"] == [{"expression": "{http.error.status_code} == 503"}]
    [fallback] = errors["handle"]
    assert fallback["handler"] == "reverse_proxy" and "health_checks" not in fallback
    assert fallback["upstreams"] == [{"dial": "127.0.0.1:8001"}, {"dial": "127.0.0.1:8002"}]
    valid = subprocess.run(
        [caddy, "validate", "--config", str(CLUSTER / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert valid.returncode == 0 and "Valid configuration" in valid.stderr + valid.stdout, valid.stderr[-2000:]
