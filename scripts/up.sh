#!/usr/bin/env bash
# Installs everything (system packages, .venv) and runs the twin on its embedded defaults.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh all,lab
exec .venv/bin/twin up "$@"
