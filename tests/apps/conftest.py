"""Every test module here runs the network on one torch thread (see the root conftest). Shared fixtures: the
clip most front-end tests upload, JupyterLab and Chromium."""

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.support.app_helpers import write_clip
from tests.support.browser import CHROMIUM_ARGS
from tests.support.jupyter_lab import jupyter_lab_server
from tests.support.session_helpers import NUM_FRAMES


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread(torch_single_thread):
    yield


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """session_helpers' clip (NUM_FRAMES frames of 96 x 64, the disc and the block) as an mp4 file at 10 fps,
    written once per test module."""
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=NUM_FRAMES)


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """(base url, notebook folder) of a JupyterLab server on 127.0.0.1, for one test module."""
    with jupyter_lab_server(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, for one test module; a missing browser fails the test."""
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is not installed: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
