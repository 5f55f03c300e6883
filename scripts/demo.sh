#!/usr/bin/env bash
# Set up a virtual environment and segment the example image from one click (downloads SAM 2.1 tiny once).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -r requirements.txt -e .
python -m apps.cli --image examples/shapes.png --point 150,130 --out outputs/mask.png "$@"
