#!/usr/bin/env bash
# Set up a virtual environment and segment the example image from one click (downloads SAM 2.1 tiny once).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/user_env.sh
python -m apps.cli --image examples/shapes.png --point 150,130 --out outputs/mask.png "$@"
