"""A correction sticks in both front ends, as a user gives it: track, click on a tracked frame to correct it,
track again (forward from the first prompt, backward over it, both ways from it). The corrected mask stays,
nothing is left stale, and the status line does not claim a replaced correction is up to date.
"""

from __future__ import annotations

import numpy as np
import pytest

import sam2_ui
from apps.web import App
from tests.support.app_helpers import TEST_LIMITS, Tab
from tests.support.session_helpers import HEIGHT, NUM_FRAMES, WIDTH, disc_centre, predictor
from tests.support.widget_helpers import click_frame_pixel

pytestmark = pytest.mark.slow

CORRECTED = 3
RUNS = {
    "forward from the first prompt": (0, "forward"),
    "backward over it": (NUM_FRAMES - 1, "backward"),
    "both ways from it": (CORRECTED, "both"),
}


def test_a_correction_given_in_the_gradio_app_sticks_when_tracking_again(clip, tmp_path):
    app = App(predictor(), TEST_LIMITS, display_size=(WIDTH, HEIGHT), work_root=tmp_path / "app")
    app.build()
    try:
        tab = Tab(app, "corrections")
        tab("ui_open", str(clip))
        tab.click(*disc_centre(0), frame=0)  # a first object is made for the click
        tab("ui_propagate_forward")
        session = tab.ui.session
        obj = session.objects[0].id
        before = session.mask(CORRECTED, obj)
        tab("ui_go_to", CORRECTED)
        tab("ui_set_tool", "negative")
        tab.click(*disc_centre(CORRECTED), frame=CORRECTED)
        corrected = session.mask(CORRECTED, obj)
        assert not np.array_equal(before, corrected)
        for run, (start, direction) in RUNS.items():
            tab("ui_go_to", start)
            outs = tab(f"ui_propagate_{direction}")
            assert np.array_equal(session.mask(CORRECTED, obj), corrected), run
            assert session.stale_frames() == [] and session.replaced_prompt_frames() == [], run
            assert "stale" not in outs[-1].status and "replaced" not in outs[-1].status, run
    finally:
        app.registry.close_all()


def test_a_correction_clicked_in_the_widget_sticks_when_tracking_again(clip):
    widget = sam2_ui.show(str(clip), predictor(), display_size=(WIDTH, HEIGHT))
    try:
        session = widget.session
        assert session.corrections_as_conditioning
        click_frame_pixel(widget, *disc_centre(0))
        widget.buttons["propagate_forward"].click()
        assert widget.wait(120)
        obj = session.objects[0].id
        before = session.mask(CORRECTED, obj)
        widget.go_to(CORRECTED)
        click_frame_pixel(widget, *disc_centre(CORRECTED), button=2)  # a right click: negative
        corrected = session.mask(CORRECTED, obj)
        assert not np.array_equal(before, corrected)
        for run, (start, direction) in RUNS.items():
            widget.go_to(start)
            widget.buttons[f"propagate_{direction}"].click()
            assert widget.wait(120)
            assert np.array_equal(session.mask(CORRECTED, obj), corrected), run
            assert session.stale_frames() == [] and session.replaced_prompt_frames() == [], run
            assert "stale" not in widget.status.value and "replaced" not in widget.status.value, run
    finally:
        widget.close()


def test_a_front_end_opened_with_the_official_default_says_when_tracking_replaced_a_correction(clip):
    widget = sam2_ui.show(str(clip), predictor(), corrections_as_conditioning=False)
    try:
        click_frame_pixel(widget, *disc_centre(0))
        widget.buttons["propagate_forward"].click()
        assert widget.wait(120)
        widget.go_to(CORRECTED)
        click_frame_pixel(widget, *disc_centre(CORRECTED), button=2)
        widget.go_to(0)
        widget.buttons["propagate_forward"].click()
        assert widget.wait(120)
        assert widget.session.replaced_prompt_frames() == [CORRECTED]
        assert f"replaced the corrections on frames {CORRECTED}" in widget.status.value
    finally:
        widget.close()
