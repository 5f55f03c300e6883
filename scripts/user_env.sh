# Sourced by app.sh and demo.sh (from the repository root): a virtual environment with what users install.
VENV=${VENV:-.venv}
python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -r requirements.txt -e .
