#!/usr/bin/env bash
# Set up a virtual environment and start the web app on http://127.0.0.1:7860 (downloads SAM 2.1 tiny once).
# Options go to app.py: --model ID | --checkpoint PATH [--config NAME], --device, --host, --port, --share, limits.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/user_env.sh
python app.py "$@"
