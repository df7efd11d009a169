#!/usr/bin/env bash
# Installs what the twin needs on a fresh Debian machine with Python 3.11: the system packages
# that are missing, then a virtual environment in .venv with the project and its extras.
# Called by scripts/up.sh and scripts/test.sh with the extras they need (default: all,dev);
# safe to run again (it only adds what is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# System packages: libusb for open3d, libgl/libgomp for open3d's renderer, mosquitto for the
# MQTT tests, chromium for the browser tests, wrk for the API benchmark.
SYSTEM_PACKAGES=(libusb-1.0-0 libgomp1 libgl1 mosquitto chromium wrk)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
EXTRAS=${1:-all,dev}
stamp=.venv/.installed-$( (cat pyproject.toml; echo "$EXTRAS") | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing the project into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
