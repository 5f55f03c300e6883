#!/usr/bin/env bash
# Set up a fresh virtual environment and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser tests drive Debian's Chromium (Playwright cannot download browsers on the CI machines).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi
. scripts/test_env.sh
# One style: lint and formatting are checked, notebooks included.
ruff check model sam2_ui apps tests benchmarks app.py notebooks
ruff format --check model sam2_ui apps tests benchmarks app.py notebooks
python -m pytest "$@"
