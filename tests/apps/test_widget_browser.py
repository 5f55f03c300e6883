"""The notebook widget in a real JupyterLab: Playwright drives Debian's Chromium, the notebook's cells run in
a real kernel, and a click on the canvas makes the mask overlay appear under it.

JupyterLab is started by the test on 127.0.0.1 (no token, settings in a temporary folder); the widget's
front-end code is the prebuilt ipycanvas / ipywidgets / ipyevents extensions pip installed. The kernel loads a
random-weight checkpoint in the official format.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import sync_playwright

from tests.support.app_helpers import free_port
from tests.support.browser import CHROMIUM_ARGS

DISPLAY = (480, 270)
BALL = (40, 95)  # the ball on frame 0 of the example clip, frame pixels (display = frame size here)

SETUP_CELL = """
from apps.examples import shapes_clip_frames
from model import SAM2VideoPredictor
import sam2_ui

predictor = SAM2VideoPredictor.from_pretrained({checkpoint!r}, device="cpu", image_size=256)
widget = sam2_ui.show(shapes_clip_frames(6, {display}), predictor, display_size={display})
widget
"""
CHECK_CELL = """
print("prompts:", len(widget.session.prompts(0)), "mask pixels:", int(widget.session.masks(0)[1].sum()))
"""

CANVAS_PIXELS_JS = """
(canvas) => Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data)
"""


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """(base url, notebook folder) of a JupyterLab server on 127.0.0.1."""
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    settings = root / "settings"
    port = free_port()
    env = dict(
        os.environ, JUPYTER_CONFIG_DIR=str(settings / "config"), JUPYTER_RUNTIME_DIR=str(settings / "rt")
    )
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.root_dir={root / 'notebooks'}", "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True", f"--LabApp.user_settings_dir={settings / 'user'}",
        f"--LabApp.workspaces_dir={settings / 'workspaces'}", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root",
    ]  # fmt: skip
    log = open(root / "lab.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "lab.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield url, root / "notebooks"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_a_click_on_the_widget_canvas_in_jupyterlab_changes_the_overlay(jupyter_lab, random_checkpoint):
    url, folder = jupyter_lab
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(SETUP_CELL.format(checkpoint=str(random_checkpoint), display=DISPLAY)),
        nbformat.v4.new_code_cell(CHECK_CELL),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "widget.ipynb")
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is not installed: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/widget.ipynb", timeout=120_000)
            page.locator(".jp-Notebook").wait_for(timeout=120_000)
            page.get_by_text("| Idle").wait_for(timeout=120_000)  # the kernel is up
            _run_cell(page, 0)
            canvas = page.locator(".jp-OutputArea-output canvas").first
            canvas.wait_for(timeout=180_000)
            before = _wait_for_pixels(canvas, lambda pixels: max(pixels) > 0, "the frame is drawn")
            box = canvas.bounding_box()
            scale = box["width"] / DISPLAY[0]
            canvas.click(position={"x": (BALL[0] + 0.5) * scale, "y": (BALL[1] + 0.5) * scale})
            after = _wait_for_pixels(
                canvas, lambda pixels: _changed(before, pixels) > 600, "the overlay appears"
            )
            # Far more pixels change than the point marker covers (radius 6 px: about 150 pixels).
            assert _changed(before, after) > 600
            _run_cell(page, 1)
            output = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")
            output.wait_for(timeout=60_000)
            text = output.inner_text()
            assert text.startswith("prompts: 1") and int(text.rsplit(" ", 1)[1]) > 0, text
        finally:
            browser.close()


def _run_cell(page, index: int) -> None:
    """Select a cell and run it (Shift+Enter); pressed again if the first press came before the kernel
    was wired to the page (the cell's prompt stays "[ ]")."""
    cell = page.locator(".jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputPrompt")
    for _ in range(10):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Escape")  # command mode: Shift+Enter runs the selected cell
        page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if prompt.inner_text().strip() not in ("[ ]:", ""):
                return
            time.sleep(0.2)
    raise AssertionError(f"cell {index} did not start: {prompt.inner_text()!r}")


def _changed(before: list[int], after: list[int]) -> int:
    """How many pixels differ (any RGBA channel)."""
    return sum(1 for i in range(0, len(before), 4) if before[i : i + 4] != after[i : i + 4])


def _wait_for_pixels(canvas, condition, what: str, timeout_s: float = 120.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        pixels = canvas.evaluate(CANVAS_PIXELS_JS)
        if condition(pixels) or time.monotonic() > deadline:
            assert condition(pixels), f"timed out waiting until {what}"
            return pixels
        time.sleep(0.5)
