"""The repository is a valid Hugging Face Space, and `python app.py` starts from the command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import gradio
import pytest

ROOT = Path(__file__).resolve().parents[2]


def front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with the Space's front matter between --- lines"
    fields = {}
    for line in match.group(1).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def test_readme_front_matter_makes_a_gradio_space_running_app_py():
    fields = front_matter()
    assert fields["sdk"] == "gradio"
    assert (ROOT / fields["app_file"]).is_file() and fields["app_file"] == "app.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", fields["sdk_version"])
    assert fields["title"] and fields["short_description"] and len(fields["short_description"]) <= 60


def test_the_space_pins_the_gradio_version_the_tests_run():
    pinned = front_matter()["sdk_version"]
    requirements = (ROOT / "requirements.txt").read_text()
    assert f"gradio=={pinned}" in requirements.split()
    assert gradio.__version__ == pinned, f"tests ran gradio {gradio.__version__}, the Space pins {pinned}"


def test_requirements_cover_the_package_dependencies():
    requirements = {
        re.split(r"[<>=!]", line)[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    pyproject = (ROOT / "pyproject.toml").read_text()
    block = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    needed = {re.split(r"[<>=!]", d.strip().strip('",'))[0].lower() for d in block.split("\n") if d.strip()}
    assert needed <= requirements, needed - requirements


@pytest.mark.slow
def test_app_py_help_lists_the_model_and_limit_options():
    out = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    for option in (
        "--model",
        "--checkpoint",
        "--config",
        "--device",
        "--host",
        "--port",
        "--share",
        "--max-upload-mb",
        "--max-seconds",
        "--max-side",
        "--max-sessions",
    ):
        assert option in out.stdout, option


@pytest.mark.slow
def test_app_py_without_weights_offline_ends_with_one_message(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "app.py", "--device", "cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr, out.stderr
    assert "Cannot load facebook/sam2.1-hiera-tiny" in out.stderr and "--checkpoint PATH" in out.stderr
