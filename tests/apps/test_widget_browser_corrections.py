"""A correction in the notebook widget, in a real JupyterLab (Chromium through Playwright, a real kernel):
click the ball, press Track forward, shift-click the ball on a tracked frame (a negative point: the
correction), go back to the first frame and press Track forward again. The corrected mask stays and no frame
is stale. A screenshot of the page is written to ``$SAM2_UI_SCREENSHOTS`` (or the test's folder) to look at.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import CHROMIUM_ARGS
from tests.support.jupyter_lab import open_widget_notebook, run_cell

pytestmark = [pytest.mark.browser, pytest.mark.notebook, pytest.mark.parity]

DISPLAY = (480, 270)
FRAMES = 8
CORRECTED = 3

SETUP_CELL = """
import numpy as np
from apps.examples import shapes_clip_frames
from model import SAM2VideoPredictor
import sam2_ui

predictor = SAM2VideoPredictor.from_pretrained({checkpoint!r}, device="cpu", image_size=256)
widget = sam2_ui.show(shapes_clip_frames({frames}, {display}), predictor, display_size={display})
widget
"""
CELLS = [
    # 1: after the first Track forward, go to the frame to correct
    "widget.wait(600); print('tracked:', widget.session.tracked_frames()); _ = widget.go_to({corrected})",
    # 2: after the correction, remember its mask and go back to the first frame
    "obj = widget.session.objects[0].id; before_run = widget.session.mask({corrected}, obj).copy()\n"
    "print('prompted:', widget.session.prompted_frames(obj), 'stale:', widget.session.stale_frames())\n"
    "_ = widget.go_to(0)",
    # 3: after the second Track forward
    "widget.wait(600); _ = widget.go_to({corrected})\n"
    "print('kept:', np.array_equal(widget.session.mask({corrected}, obj), before_run),"
    " 'stale:', widget.session.stale_frames())",
]


def ball_centre(t: int) -> tuple[float, float]:
    """The ball's centre on frame t of `shapes_clip_frames` (its own formula), in frame pixels."""
    width, height = DISPLAY
    return 40 + (width - 80) * t / (FRAMES - 1), height * 0.35 + height * 0.2 * abs(math.sin(t / 4))


def test_a_correction_clicked_in_jupyterlab_sticks_after_tracking_again(
    jupyter_lab, random_checkpoint, tmp_path
):
    url, folder = jupyter_lab
    nb = nbformat.v4.new_notebook()
    setup = SETUP_CELL.format(checkpoint=str(random_checkpoint), frames=FRAMES, display=DISPLAY)
    nb.cells = [nbformat.v4.new_code_cell(setup)]
    nb.cells += [nbformat.v4.new_code_cell(c.format(corrected=CORRECTED)) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "corrections.ipynb")
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is not installed: apt-get install -y chromium"
    shots = Path(os.environ.get("SAM2_UI_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            canvas, _ = open_widget_notebook(page, url, "corrections.ipynb")
            scale = canvas.bounding_box()["width"] / DISPLAY[0]

            def click_ball(t: int, **kwargs) -> None:
                x, y = ball_centre(t)
                canvas.click(position={"x": (x + 0.5) * scale, "y": (y + 0.5) * scale}, **kwargs)

            def output(index: int) -> str:
                out = page.locator(".jp-Cell").nth(index).locator(".jp-OutputArea-output")
                out.first.wait_for(timeout=600_000)
                return out.first.inner_text()

            track = page.get_by_role("button", name="Track forward")
            click_ball(0)
            track.wait_for(timeout=60_000)
            _press_when_enabled(page, track)
            run_cell(page, 1)
            assert output(1).startswith(f"tracked: {list(range(FRAMES))}"), output(1)
            click_ball(CORRECTED, modifiers=["Shift"])  # a negative point on a tracked frame
            run_cell(page, 2)
            assert f"prompted: [0, {CORRECTED}]" in output(2), output(2)
            _press_when_enabled(page, track)
            run_cell(page, 3)
            assert output(3).strip() == "kept: True stale: []", output(3)
            page.locator(".jp-Cell").nth(0).scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "widget_after_correction_and_tracking.png"), full_page=True)
        finally:
            browser.close()


def _press_when_enabled(page, button) -> None:
    """Click an ipywidgets button once the widget enables it (a click round trip may still be running)."""
    page.wait_for_function("(b) => !b.disabled", arg=button.element_handle(), timeout=120_000)
    button.click()
