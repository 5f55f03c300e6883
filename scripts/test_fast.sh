#!/usr/bin/env bash
# The fast loop: the setup of scripts/test.sh (skipped while what it installs from is unchanged), then every
# test not marked browser, notebook, server, parity or slow (pyproject.toml registers the marks). The whole
# suite, lint included, is `bash scripts/test.sh` (what CI runs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.14.1}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.29.1}
STAMP="$VENV/.test-setup"
SOURCES=$(cat requirements.txt pyproject.toml scripts/test_env.sh | sha256sum | cut -d' ' -f1)
WANT="$SOURCES torch $TORCH_VERSION torchvision $TORCHVISION_VERSION"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  . scripts/test_env.sh
  echo "$WANT" >"$STAMP"
fi
. "$VENV/bin/activate"
python -m pytest -m "not (browser or notebook or server or parity or slow)" "$@"
