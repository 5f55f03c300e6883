"""The notebook widget in a real JupyterLab: Playwright drives Debian's Chromium, the notebook's cells run in
a real kernel, and a click on the canvas makes the mask overlay appear under it.

JupyterLab is started by the test on 127.0.0.1 (no token, settings in a temporary folder); the widget's
front-end code is the prebuilt ipycanvas / ipywidgets / ipyevents extensions pip installed. The kernel loads a
random-weight checkpoint in the official format.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import CHROMIUM_ARGS
from tests.support.jupyter_lab import changed_pixels, open_widget_notebook, run_cell, wait_for_pixels

pytestmark = [pytest.mark.browser, pytest.mark.notebook, pytest.mark.parity]

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
            canvas, before = open_widget_notebook(page, url, "widget.ipynb")
            box = canvas.bounding_box()
            scale = box["width"] / DISPLAY[0]
            canvas.click(position={"x": (BALL[0] + 0.5) * scale, "y": (BALL[1] + 0.5) * scale})
            after = wait_for_pixels(
                canvas, lambda pixels: changed_pixels(before, pixels) > 600, "the overlay appears"
            )
            # Far more pixels change than the point marker covers (radius 6 px: about 150 pixels).
            assert changed_pixels(before, after) > 600
            run_cell(page, 1)
            output = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")
            output.wait_for(timeout=60_000)
            text = output.inner_text()
            assert text.startswith("prompts: 1") and int(text.rsplit(" ", 1)[1]) > 0, text
        finally:
            browser.close()
