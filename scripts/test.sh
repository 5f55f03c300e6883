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
VENV=${VENV:-.venv}
python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
# The torch pin matches the wheels kept on the CI machines; users may use any torch >= 2.5.1.
python -m pip install --quiet "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
# requirements.txt pins gradio to the Space's sdk_version: the tests run the version the Space runs.
python -m pip install --quiet -r requirements.txt -e ".[test]"
# The official implementation, for the parity tests only (never imported by the package).
SAM2_BUILD_CUDA=0 python -m pip install --quiet --no-build-isolation "sam2==1.1.0"
# One style: lint and formatting are checked, notebooks included.
ruff check model sam2_ui apps tests benchmarks app.py notebooks
ruff format --check model sam2_ui apps tests benchmarks app.py notebooks
python -m pytest "$@"
