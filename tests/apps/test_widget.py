"""The notebook widget driven through its real ipycanvas, ipyevents and ipywidgets handlers, without a kernel:
clicks land on frame pixels at any display scale, layers are redrawn only when they change, tracking runs
in the background and stops on Stop, bad input becomes a status-line message, and the same events give the
same masks as the Gradio app.
"""

from __future__ import annotations

import html
import io

import numpy as np
import pytest
from PIL import Image

import sam2_ui
from apps.web import App
from sam2_ui import Session, SessionError
from sam2_ui.engine.quality import DoubtRule
from sam2_ui.output.memory_view import CONDITIONING_COLOR, POINTER_COLOR
from sam2_ui.widget import widget as widget_module
from sam2_ui.widget.widget import SegmentWidget
from tests.support.app_helpers import TEST_LIMITS, Tab, write_clip
from tests.support.bad_media import UNOPENABLE, assert_plain, write_bad_media
from tests.support.session_helpers import (
    HEIGHT,
    WIDTH,
    block_box,
    disc_centre,
    make_frames,
    predictor,
)
from tests.support.widget_helpers import (
    canvas_event,
    click,
    click_frame_pixel,
    drag,
    key,
    record_draws,
    wait_until,
)

OPEN: list[SegmentWidget] = []


@pytest.fixture(autouse=True)
def close_widgets():
    """Each test's widgets are closed after it, even when it fails half-way (a tracking thread stops)."""
    yield
    while OPEN:
        OPEN.pop().close()


def open_widget(frames=None, display_size=(WIDTH, HEIGHT), **kwargs) -> SegmentWidget:
    session = Session.open(make_frames() if frames is None else frames, predictor())
    session.doubt_rule = DoubtRule(min_iou=0, min_score=0, max_area_ratio=float("inf"))
    widget = SegmentWidget(session, display_size=display_size, **kwargs)
    OPEN.append(widget)
    return widget


def all_masks(session: Session) -> dict[tuple[int, int], np.ndarray]:
    return {
        (f, o): session.mask(f, o) for f in range(session.num_frames) for o in (i.id for i in session.objects)
    }


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_clicks_land_on_the_frame_pixel_under_them_at_any_display_scale(scale):
    frames = make_frames(2, 4 * HEIGHT, 4 * WIDTH)  # 256 x 384
    widget = open_widget(frames, display_size=(round(4 * WIDTH * scale), round(4 * HEIGHT * scale)))
    size = (round(4 * WIDTH * scale), round(4 * HEIGHT * scale))
    assert (widget.canvas.width, widget.canvas.height) == size
    fx, fy = 4 * disc_centre(0)[0], 4 * disc_centre(0)[1]
    click_frame_pixel(widget, fx, fy)
    ((x, y, positive),) = widget.session.prompts(0)[1].points
    assert positive and (x, y) == pytest.approx((fx, fy), abs=1e-6)
    # A click at the canvas's right edge lands on the frame's last column.
    click(widget, widget.canvas.width - 0.01, 0.01)
    x, y, _ = widget.session.prompts(0)[1].points[-1]
    assert (round(x), round(y)) == (4 * WIDTH - 1, 0)
    widget.close()


def test_a_click_redraws_the_masks_and_markers_but_not_the_frame(monkeypatch):
    widget = open_widget()
    log = record_draws(widget, monkeypatch)
    click_frame_pixel(widget, *disc_centre(0))
    assert log.images("frame") == []
    (masks,) = log.images("masks")
    (markers,) = log.images("markers")
    layers = widget._last_view.layers
    # The overlay goes out as lossless RGBA: exactly what the renderer made, covering the disc.
    assert masks.shape == (HEIGHT, WIDTH, 4) and np.array_equal(masks, layers.masks)
    cx, cy = (round(c) for c in disc_centre(0))
    assert masks[cy, cx, 3] > 0 and markers[cy, cx, 3] == 255
    log.clear()
    widget.go_to(1)  # another frame: now the frame layer is sent (JPEG, RGB)
    (frame,) = log.images("frame")
    assert frame.shape == (HEIGHT, WIDTH, 3)
    log.clear()
    canvas_event(widget, "client_ready")  # a page reload: the stateless canvas is drawn again
    assert [len(log.images(layer)) for layer in ("frame", "masks", "markers")] == [1, 1, 1]
    widget.close()


def test_undo_and_redo_from_keys_and_buttons_redraw_the_overlay(monkeypatch):
    widget = open_widget()
    click_frame_pixel(widget, *disc_centre(0))
    log = record_draws(widget, monkeypatch)
    key(widget, "z")
    assert widget.session.prompts(0) == {} and log.images("masks")[-1][..., 3].max() == 0
    widget.buttons["redo"].click()
    assert widget.session.prompts(0)[1].points and log.images("masks")[-1][..., 3].max() > 0
    key(widget, "z", ctrl=True)
    assert widget.session.prompts(0) == {}
    assert not widget.buttons["undo"].disabled  # the object added for the click can still be undone
    widget.close()


def test_right_click_or_shift_click_gives_a_negative_point_and_the_tool_toggle_works_everywhere():
    widget = open_widget()
    cx, cy = disc_centre(0)
    click_frame_pixel(widget, cx, cy)
    click_frame_pixel(widget, 80, 10, button=2)  # right click (ipyevents reports the button)
    click_frame_pixel(widget, 80, 50, shift=True)
    widget.tool.value = "negative"  # the fallback without ipyevents
    click_frame_pixel(widget, 5, 50)
    widget.tool.value = "positive"
    click_frame_pixel(widget, cx + 8, cy)  # away from the first marker (a click there removes it)
    points = widget.session.prompts(0)[1].points
    assert [p[2] for p in points] == [True, False, False, False, True]
    # Clicking a marker removes its point.
    click_frame_pixel(widget, 80, 10)
    assert [p[:2] for p in widget.session.prompts(0)[1].points if p[:2] == (80.0, 10.0)] == []
    widget.close()


def test_a_drag_with_the_box_tool_gives_a_box_and_draws_a_rubber_band(monkeypatch):
    widget = open_widget()
    key(widget, "b")
    assert widget.tool.value == "box"
    x0, y0, x1, y1 = block_box(0)
    log = record_draws(widget, monkeypatch)
    drag(widget, x0 + 0.5, y0 + 0.5, x1 + 0.5, y1 + 0.5)
    assert ("markers", "strokeRect", None) in log.entries
    assert widget.session.prompts(0)[1].box == pytest.approx((x0, y0, x1, y1))
    widget.close()


def test_a_drag_with_a_point_tool_draws_the_rubber_band_of_the_box_it_makes(monkeypatch):
    widget = open_widget()
    assert widget.tool.value == "positive"
    x0, y0, x1, y1 = block_box(0)
    log = record_draws(widget, monkeypatch)
    canvas_event(widget, "mouse_down", x=x0 + 0.5, y=y0 + 0.5)
    canvas_event(widget, "mouse_move", x=x0 + 2.5, y=y0 + 1.5)  # still a click: no band yet
    assert ("markers", "strokeRect", None) not in log.entries
    canvas_event(widget, "mouse_move", x=x1 + 0.5, y=y1 + 0.5)
    assert ("markers", "strokeRect", None) in log.entries
    canvas_event(widget, "mouse_up", x=x1 + 0.5, y=y1 + 0.5)
    assert widget.session.prompts(0)[1].box == pytest.approx((x0, y0, x1, y1))
    assert widget.session.prompts(0)[1].points == ()
    widget.close()


def test_delete_and_backspace_remove_the_selected_objects_last_point():
    widget = open_widget()
    cx, cy = disc_centre(0)
    click_frame_pixel(widget, cx, cy)
    click_frame_pixel(widget, cx + 8, cy)
    key(widget, "Delete")
    assert [p[:2] for p in widget.session.prompts(0)[1].points] == [(cx, cy)]
    key(widget, "Backspace")
    assert widget.session.prompts(0) == {}
    key(widget, "Delete")
    assert "has no point on this frame" in widget.messages.value
    widget.close()


def test_objects_are_added_renamed_selected_and_removed_from_the_controls():
    widget = open_widget()
    widget.name.value = "ball"
    widget.buttons["add_object"].click()
    widget.buttons["add_object"].click()
    assert [o.name for o in widget.session.objects] == ["ball", "object 2"]
    assert [b.description for b in widget.objects.children] == ["1. ball", "2. object 2"]
    assert widget.objects.children[0].style.button_color == "#{:02x}{:02x}{:02x}".format(
        *widget.session.objects[0].color
    )
    widget.objects.children[0].click()
    assert widget.session.selected == 1
    widget.name.value = "red ball"
    widget.buttons["rename_object"].click()
    assert widget.session.objects[0].name == "red ball"
    widget.buttons["remove_object"].click()
    assert [o.id for o in widget.session.objects] == [2]
    key(widget, "1")
    assert widget.session.selected == 2
    widget.close()


def test_tracking_runs_in_the_background_streams_frames_and_stops_within_one_frame(monkeypatch):
    widget = open_widget(make_frames(30), stream_interval_s=0.0)
    click_frame_pixel(widget, *disc_centre(0))
    log = record_draws(widget, monkeypatch)
    widget.buttons["propagate_forward"].click()
    thread = widget._thread
    assert thread is not None and thread.is_alive()  # the click returned while tracking runs
    assert wait_until(lambda: widget.progress.value >= 3)
    assert widget.progress.max == 30  # the start frame counts
    assert len(log.images("frame")) >= 2  # the canvas follows the tracked frames
    assert widget.slider.value == widget.frame > 0
    # While it runs the kernel thread still takes events: a click is refused with a message.
    click_frame_pixel(widget, *disc_centre(0))
    assert "Tracking is running" in widget.messages.value
    widget.buttons["stop"].click()
    at_stop = len(widget.session.tracked_frames(1))
    assert widget.wait(30)
    summary = widget.session.last_propagation
    assert summary.cancelled and summary.done < summary.total
    assert len(widget.session.tracked_frames(1)) <= at_stop + 1  # the frame in flight, no more
    assert "Stopped forward" in widget.messages.value
    assert widget.buttons["stop"].disabled and not widget.buttons["propagate_forward"].disabled
    widget.close()


@pytest.mark.slow
def test_track_enables_stop_at_once_and_the_progress_starts_at_zero_of_the_new_run():
    widget = open_widget(make_frames(8))
    click_frame_pixel(widget, *disc_centre(0))
    widget.buttons["propagate_forward"].click()
    assert widget.wait(60)
    assert (widget.progress.value, widget.progress.max) == (8, 8) and widget.buttons["stop"].disabled
    widget.go_to(2)
    # The drawing lock held here keeps the run's thread from drawing: what shows is what the press drew.
    with widget_module._DRAW_LOCK:
        widget.buttons["propagate_forward"].click()
        assert not widget.buttons["stop"].disabled
        assert widget.buttons["propagate_forward"].disabled and widget.buttons["undo"].disabled
        assert (widget.progress.value, widget.progress.max) == (0, 6)  # frames 2 to 7
        assert "0/6 frames" in widget.eta.value
    assert widget.wait(60)
    assert (widget.progress.value, widget.progress.max) == (6, 6) and widget.buttons["stop"].disabled
    widget.close()


def test_code_and_clicks_share_one_session(monkeypatch):
    widget = open_widget()
    session = widget.session
    obj = session.add_object("from code")
    session.add_point(0, obj, *disc_centre(0))
    log = record_draws(widget, monkeypatch)
    widget.refresh()
    assert [b.description for b in widget.objects.children] == ["1. from code"]
    assert log.images("masks")[-1][..., 3].max() > 0
    click_frame_pixel(widget, *block_box(0)[:2])
    assert len(session.prompts(0)[obj].points) == 2  # the click went to the object made in code
    widget.close()


def test_bad_input_becomes_a_status_line_message_and_never_raises():
    widget = open_widget()
    click_frame_pixel(widget, *disc_centre(0))  # before any object: one is made, and the user is told
    assert "Added 'object 1' for this click" in widget.messages.value.replace("&#x27;", "'")
    canvas_event(widget, "mouse_down", x=WIDTH + 30, y=5)
    canvas_event(widget, "mouse_up", x=WIDTH + 30, y=5)
    assert "outside the image" in widget.messages.value
    widget.buttons["stop"].click()  # disabled in the page; a key or code can still ask
    assert "Nothing to stop" in widget.messages.value
    key(widget, "Escape")
    assert "Nothing to stop" in widget.messages.value
    widget.ui.click = None  # an unexpected failure inside a handler
    click_frame_pixel(widget, 10, 10)
    assert "Unexpected error" in widget.messages.value and widget.last_traceback
    del widget.ui.click
    widget.session.close()  # closed from code
    click_frame_pixel(widget, 10, 10)
    assert "session was closed" in widget.messages.value
    widget.buttons["propagate_both"].click()
    assert widget.wait(10) and "session was closed" in widget.messages.value
    assert "closed" in widget.status.value
    widget.close()


@pytest.mark.slow
def test_the_memory_view_shows_what_the_memory_bank_holds():
    widget = open_widget(make_frames(12))
    click_frame_pixel(widget, *disc_centre(0))
    assert "1 conditioning frame(s) (0)" in widget.memory_text.value  # a pending prompt counts already
    widget.buttons["propagate_forward"].click()
    assert widget.wait(60)
    widget.go_to(9)
    memory = widget.session.memory_view(9, 1)
    assert memory.conditioning == (0,) and [t for _, t in memory.recent] == [3, 4, 5, 6, 7, 8]
    assert memory.pointers == (0, 8, 7, 6, 5, 4, 3, 2, 1)
    assert "tracked frame(s) just earlier (3, 4, 5, 6, 7, 8)" in widget.memory_text.value
    strip = np.asarray(Image.open(io.BytesIO(bytes(widget.memory_strip.value))))
    per_frame = WIDTH // 12  # the strip is as wide as the canvas
    top = strip[4]
    assert tuple(top[per_frame // 2]) == CONDITIONING_COLOR
    assert all(int(top[t * per_frame + 3, 2]) > int(top[t * per_frame + 3, 0]) + 60 for t in range(3, 9))
    assert tuple(strip[12, 1 * per_frame + 3]) == POINTER_COLOR  # frames 1-2 only lend pointers (low)
    widget.show_memory.value = False
    assert widget.memory_box.layout.display == "none"
    widget.close()


def test_the_timeline_jumps_to_the_frame_clicked():
    widget = open_widget()
    click_frame_pixel(widget, *disc_centre(0))
    (jump,) = widget.dom_events[2:]
    jump._handle_mouse_msg(None, {"event": "click", "dataX": WIDTH - 1, "dataY": 3}, [])
    assert widget.frame == 5 and widget.slider.value == 5
    widget.close()


def test_export_buttons_write_into_the_export_folder_and_say_where(tmp_path):
    widget = open_widget(export_dir=tmp_path / "exports")
    widget.buttons["export"].click()
    assert "no masks to export yet" in widget.messages.value
    click_frame_pixel(widget, *disc_centre(0))
    widget.export_kind.value = "coco"
    widget.buttons["export"].click()
    widget.buttons["save"].click()
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == [
        "frames_coco.json",
        "frames_session.json",
    ]
    assert str((tmp_path / "exports" / "frames_session.json").resolve()) in widget.messages.value


def test_show_opens_media_in_one_line(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    widget = sam2_ui.show(str(clip), predictor())
    OPEN.append(widget)
    assert widget.session.num_frames == 6 and "Frame 0 (frames 0–5)" in widget.status.value
    bundle = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    widget.close()


WORDS = {
    "missing": "there is no file or folder",
    "random bytes": "not a readable video",
    "truncated": "not a readable video",
    "text as jpg": "not a readable image",
    "empty folder": "no JPEG or PNG frames",
}


@pytest.mark.parametrize("case", UNOPENABLE)
def test_show_never_raises_for_unreadable_media_and_says_what_to_do(tmp_path, case):
    source = write_bad_media(tmp_path, case)
    widget = sam2_ui.show(str(source), predictor(), display_size=(WIDTH, HEIGHT))
    OPEN.append(widget)
    assert widget.session is None and isinstance(widget.error, SessionError)
    status = html.unescape(widget.status.value)
    assert str(widget.error) in status and WORDS[case] in status, status
    assert_plain(status, given=str(source))
    assert "application/vnd.jupyter.widget-view+json" in widget._repr_mimebundle_()


def test_a_video_damaged_in_the_middle_opens_and_its_bad_frame_is_said_plainly(tmp_path):
    clip = write_bad_media(tmp_path, "damaged middle")
    widget = sam2_ui.show(str(clip), predictor(), display_size=(WIDTH, HEIGHT))
    OPEN.append(widget)
    assert widget.error is None and widget.session.num_frames == 12
    for frame in range(12):
        widget.go_to(frame)
    assert "is damaged" in widget.messages.value, widget.messages.value
    assert_plain(widget.messages.value)
    widget.go_to(0)  # the rest of the video still works
    click_frame_pixel(widget, *disc_centre(0))
    assert widget.session.masks(0)


def test_show_reports_a_model_that_cannot_be_loaded_instead_of_raising(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    for model in ("facebook/sam2.1-hiera-nano", str(tmp_path / "nope.pt")):
        widget = sam2_ui.show(str(clip), model)
        OPEN.append(widget)
        assert widget.session is None and widget.error is not None
        assert "Cannot load the model" in html.unescape(widget.status.value)


@pytest.mark.slow
def test_the_status_line_says_which_precision_runs(monkeypatch):
    from model.loading import precision as prec

    monkeypatch.setattr(prec, "fast_bf16", lambda device: "AVX-512 BF16")
    widget = open_widget()
    assert "· fp32 on CPU</span>" in widget.status.value  # the tests run in fp32 (SAM2_UI_PRECISION)
    widget = sam2_ui.show(make_frames(), predictor(), display_size=(WIDTH, HEIGHT), precision="bf16")
    OPEN.append(widget)
    assert widget.session.precision == "bf16"
    assert "· bf16 autocast on CPU (AVX-512 BF16)</span>" in widget.status.value
    click_frame_pixel(widget, *disc_centre(0))  # every redraw keeps it
    assert widget.session.masks(0) and "bf16 autocast on CPU" in widget.status.value


@pytest.mark.slow
def test_the_same_events_give_the_same_masks_as_the_gradio_app(tmp_path):
    """One sequence of user events through both front ends' handlers: clicks (one a right click), keys
    (add object, box tool, undo, redo), a box from two clicks and a tracking run."""
    clip = write_clip(tmp_path / "clip.mp4")
    app = App(predictor(), TEST_LIMITS, display_size=(WIDTH, HEIGHT), work_root=tmp_path / "app")
    app.build()
    tab = Tab(app, "shared")
    tab("ui_open", str(clip))
    session = Session.open(str(clip), predictor())
    widget = SegmentWidget(session, display_size=(WIDTH, HEIGHT))
    OPEN.append(widget)
    cx, cy = (round(c) for c in disc_centre(0))
    x0, y0, x1, y1 = block_box(0)
    events = [
        ("click", cx, cy),
        ("right_click", 85, 8),
        ("key", "a"),
        ("key", "b"),
        ("click", x0, y0),
        ("click", x1, y1),
        ("key", "z"),
        ("key", "y"),
        ("track", "forward"),
    ]
    for kind, *args in events:
        if kind == "click":
            tab.click(*args, frame=0)
            click_frame_pixel(widget, *args)
        elif kind == "right_click":
            tab.click(*args, negative=True, frame=0)
            click_frame_pixel(widget, *args, button=2)
        elif kind == "key":
            tab.event("ui_key", key=args[0], ctrl=False, shift=False)
            key(widget, args[0])
        else:
            tab(f"ui_propagate_{args[0]}")
            widget.buttons[f"propagate_{args[0]}"].click()
            assert widget.wait(60)
    gradio_session = tab.ui.session
    assert session.objects == gradio_session.objects and len(session.objects) == 2
    for f in range(6):
        theirs = {o: (p.points, p.box) for o, p in gradio_session.prompts(f).items()}
        assert theirs == {o: (p.points, p.box) for o, p in session.prompts(f).items()}
    theirs, ours = all_masks(gradio_session), all_masks(session)
    assert theirs.keys() == ours.keys() and len(ours) == 12
    for k in ours:
        assert np.array_equal(theirs[k], ours[k]), k
    widget.close()
    app.registry.close_all()
