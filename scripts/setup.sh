#!/usr/bin/env bash
# Installs what the twin needs on a fresh Debian machine with Python 3.11: the system packages
# that are missing, then a virtual environment in .venv with the project and its extras.
# Called by scripts/up.sh and scripts/test.sh with the extras they need (default: all,dev);
# safe to run again (it only adds what is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# System packages: libusb for open3d, libgl/libgomp for open3d's renderer, mosquitto for the
# MQTT tests, chromium for the browser tests, wrk for the API benchmark, postgresql for the
# PostgreSQL store tests (a server the tests start themselves), openssl for the MQTT TLS tests.
SYSTEM_PACKAGES=(libusb-1.0-0 libgomp1 libgl1 mosquitto chromium wrk postgresql openssl haproxy)
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
# The extras installed so far are remembered with the pyproject.toml they came from
# (.venv/.installed: "HASH extra,extra,..."): asking for extras already there installs nothing, so
# the README's two commands share one environment; new extras are added to the ones present.
EXTRAS=${1:-all,dev}
project=$(sha1sum pyproject.toml | cut -c1-12)
read -r had_project had_extras < .venv/.installed 2>/dev/null || true
[ "${had_project:-}" = "$project" ] || had_extras=""
want=$(echo "${had_extras:-},$EXTRAS" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)
if [ "$want" != "${had_extras:-}" ]; then
  echo "setup: installing the project into .venv with [$want]"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$want]"
  rm -f .venv/.installed-*
  echo "$project $want" > .venv/.installed
fi

# Browser-side files (package.json, pinned in package-lock.json): three.js for /viewer and
# Swagger UI for /docs, from the npm registry, never from a CDN at run time. `npm ci` runs when
# node_modules is missing or older than the lock file; then the few files the browser loads are
# copied into the package (twin/viewer/static/vendor, gitignored, carried in the wheel).
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing npm"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
fi
lock_sum=$(sha1sum package-lock.json | cut -c1-12)
if [ "$(cat node_modules/.twin-lock 2>/dev/null)" != "$lock_sum" ]; then
  echo "setup: npm ci (three.js, swagger-ui-dist, gltf-validator)"
  SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.twin-lock
fi
VENDOR=twin/viewer/static/vendor
mkdir -p "$VENDOR"
for f in three/build/three.module.js three/build/three.core.js three/LICENSE \
         three/examples/jsm/controls/OrbitControls.js \
         swagger-ui-dist/swagger-ui-bundle.js swagger-ui-dist/swagger-ui.css \
         swagger-ui-dist/LICENSE; do
  case "$f" in
    */LICENSE) dest="$VENDOR/${f%%/*}.LICENSE" ;;
    *) dest="$VENDOR/${f##*/}" ;;
  esac
  if [ ! -f "$dest" ] || [ "node_modules/$f" -nt "$dest" ]; then
    cp "node_modules/$f" "$dest"
  fi
done
