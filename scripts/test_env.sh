# Sourced by test.sh and test_fast.sh (from the repository root): a virtual environment with what the tests need.
VENV=${VENV:-.venv}
python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
# The torch pin matches the wheels kept on the CI machines; users may use any torch >= 2.5.1.
python -m pip install --quiet "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
# requirements.txt pins gradio to the Space's sdk_version: the tests run the version the Space runs.
python -m pip install --quiet -r requirements.txt -e ".[test]"
# The official implementation, for the parity tests only (never imported by the package; collecting the
# parity modules imports it, even where the fast loop leaves them out).
SAM2_BUILD_CUDA=0 python -m pip install --quiet --no-build-isolation "sam2==1.1.0"
