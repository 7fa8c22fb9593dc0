#!/usr/bin/env bash
# Debian packages the tests need: Chromium for the browser tests (Playwright drives it through
# executable_path; we never download a browser build), PostgreSQL for the PostgreSQL test, Caddy for the
# HTTPS recipe test (deploy/caddy) and systemd-analyze to verify the systemd unit (deploy/systemd).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's caddy package starts a default site on port 80; the tests run their own Caddy on free ports.
if [[ " ${missing[*]} " == *" caddy "* ]] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now caddy >/dev/null 2>&1 || true
fi
