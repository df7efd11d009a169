#!/usr/bin/env bash
# Installs everything (system packages, .venv) and runs the whole test suite: lint, format, tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh all,ray,dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
