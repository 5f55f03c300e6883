"""The interaction layer, driven with event sequences as a front end sends them, with no UI at all.

Each test checks what reached the engine (the recorded `Session` calls) and what the returned `View` shows.
The clip is session_helpers' 6 frames of 96 x 64 (a red disc moving right, a green block moving left),
displayed at half size (48 x 32) unless a test says otherwise, so display pixels differ from frame pixels.
"""

from __future__ import annotations

import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from sam2_ui import DisplayMapping, Session, SessionError
from sam2_ui.engine.quality import DoubtRule
from sam2_ui.interaction.commands import BOX, COMMANDS, NEGATIVE, POSITIVE
from sam2_ui.interaction.interaction import Interaction
from sam2_ui.interaction.keys import KEYMAP, command_for_key
from sam2_ui.interaction.view import DOUBTFUL, MASKED, NOTHING, PROMPTED, STALE
from tests.support.bad_media import UNOPENABLE, assert_plain, write_bad_media
from tests.support.session_helpers import (
    HEIGHT,
    NUM_FRAMES,
    WIDTH,
    all_masks,
    assert_same_masks,
    block_box,
    disc_centre,
    make_frames,
    predictor,
    state_of,
)

DISPLAY = (WIDTH // 2, HEIGHT // 2)
RECORDED = (
    "add_object",
    "select_object",
    "rename_object",
    "remove_object",
    "add_point",
    "add_box",
    "remove_point",
    "clear",
    "undo",
    "redo",
    "propagate",
    "cancel",
    "segment_everything",
)


def record_calls(session: Session) -> list[tuple]:
    """Wrap the session's verbs so every call from outside is recorded as (name, args, kwargs).

    Calls the session makes on itself (``add_object`` selects the new object) are not recorded.
    """
    calls: list[tuple] = []
    depth = [0]
    for name in RECORDED:
        original = getattr(session, name)

        def wrapper(*args, _name=name, _original=original, **kwargs):
            if depth[0] == 0:
                calls.append((_name, args, kwargs))
            depth[0] += 1
            try:
                return _original(*args, **kwargs)
            finally:
                depth[0] -= 1

        setattr(session, name, wrapper)
    return calls


@pytest.fixture
def ui(frames):
    interaction = Interaction(predictor(), display_size=DISPLAY)
    view = interaction.open(frames)
    assert view.num_frames == NUM_FRAMES and not view.errors
    # Random weights predict low IoUs: the doubt rule is pinned off here, and on in the test about it.
    interaction.session.doubt_rule = DoubtRule(min_iou=0.0, min_score=0.0, max_area_ratio=float("inf"))
    interaction.calls = record_calls(interaction.session)
    yield interaction
    interaction.close()


def display_of(x: float, y: float) -> tuple[float, float]:
    """Frame pixel -> the display pixel a person clicks to hit it."""
    return DisplayMapping.fit((WIDTH, HEIGHT), DISPLAY).to_display(x, y)


def names(calls) -> list[str]:
    return [c[0] for c in calls]


# --------------------------------------------------------------------------------------------- before media
def test_click_before_any_upload_says_upload_first_and_enables_only_open():
    ui = Interaction(predictor())
    view = ui.click(10, 10)
    assert view.image is None and view.num_frames == 0
    assert any("Upload a video or an image first" in e for e in view.errors)
    assert {c for c, on in view.enabled.items() if on} == {"open", "load"}
    assert set(view.enabled) == set(COMMANDS)


def test_unreadable_upload_gives_an_error_and_keeps_the_open_session(ui, tmp_path):
    before = state_of(ui.session)
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(b"this is not a video")
    view = ui.open(bad)
    assert view.errors and "Cannot open" in view.errors[0]
    assert view.num_frames == NUM_FRAMES and state_of(ui.session) == before


@pytest.mark.parametrize("case", UNOPENABLE)
def test_unreadable_media_is_refused_in_plain_words(ui, tmp_path, case):
    source = write_bad_media(tmp_path, case)
    view = ui.open(source)
    (error,) = view.errors
    assert error.startswith(f"Cannot open {source.name}: ")
    assert_plain(error, given=str(source))
    assert view.num_frames == NUM_FRAMES  # the open session stays


# --------------------------------------------------------------------------------------------------- clicks
def test_first_click_adds_an_object_and_a_positive_point_at_the_mapped_frame_pixel(ui):
    cx, cy = disc_centre(0)
    u, v = display_of(cx, cy)
    view = ui.click(u, v)
    assert names(ui.calls) == ["add_object", "add_point"]
    frame, obj, x, y, positive = ui.calls[1][1]
    assert (frame, obj, positive) == (0, None, True)
    assert (x, y) == pytest.approx((cx, cy))
    assert [r.id for r in view.objects] == [1] and view.selected == 1
    assert view.objects[0].timeline[0] == PROMPTED
    assert view.image.shape == (DISPLAY[1], DISPLAY[0], 3)
    # the overlay changed the pixels under the click
    plain, _ = ui.session.render(0, DISPLAY, prompts=False, alpha=0.0, outline=False)
    assert not np.array_equal(view.image[round(v), round(u)], plain[round(v), round(u)])


def test_negative_tool_and_right_click_add_negative_points(ui):
    ui.click(*display_of(*disc_centre(0)))
    ui.set_tool(NEGATIVE)
    ui.click(*display_of(80, 10))
    ui.set_tool(POSITIVE)
    ui.click(*display_of(10, 55), negative=True)
    points = [c[1] for c in ui.calls if c[0] == "add_point"]
    assert [p[4] for p in points] == [True, False, False]


def test_clicking_an_existing_marker_removes_that_point(ui):
    ui.click(*display_of(*disc_centre(0)))
    ui.click(*display_of(60, 20))
    ui.calls.clear()
    view = ui.click(*display_of(60.4, 20.4))  # on the second marker
    assert names(ui.calls) == ["remove_point"]
    assert ui.calls[0][1] == (0, 1, 1)
    assert ui.session.prompts(0)[1].points == ((pytest.approx(disc_centre(0)[0]), pytest.approx(22.0), True),)
    assert view.objects[0].timeline[0] == PROMPTED


def test_box_tool_takes_two_clicks_and_shows_the_first_corner(ui):
    x0, y0, x1, y1 = block_box(0)
    ui.set_tool(BOX)
    view = ui.click(*display_of(x0, y0))
    assert view.pending_box == pytest.approx((x0, y0), abs=1.0)
    assert "Box: now click the opposite corner" in view.status
    assert "add_box" not in names(ui.calls)
    view = ui.click(*display_of(x1, y1))
    assert view.pending_box is None and "opposite corner" not in view.status
    assert names(ui.calls) == ["add_object", "add_box"]
    frame, obj, *corners = ui.calls[-1][1]
    assert frame == 0 and corners == pytest.approx([x0, y0, x1, y1], abs=1.0)
    assert ui.session.prompts(0)[1].box is not None


def test_changing_frame_drops_a_half_given_box(ui):
    ui.set_tool(BOX)
    ui.click(*display_of(5, 5))
    view = ui.key("ArrowRight")
    assert view.frame == 1 and view.pending_box is None and ui.pending_box is None
    ui.click(*display_of(40, 40))  # a first corner again, not a box
    assert "add_box" not in names(ui.calls)


def test_drag_gives_a_box_in_frame_pixels(ui):
    x0, y0, x1, y1 = block_box(0)
    ui.drag(*display_of(x1, y1), *display_of(x0, y0))
    box = ui.session.prompts(0)[1].box
    assert box == pytest.approx((x0, y0, x1, y1), abs=1.0)


def test_click_outside_the_image_is_refused_without_calling_the_engine(ui):
    ui.click(*display_of(*disc_centre(0)))
    before = state_of(ui.session)
    ui.calls.clear()
    view = ui.click(DISPLAY[0] + 3, 5)
    assert view.errors and "outside the image" in view.errors[0]
    assert ui.calls == [] and state_of(ui.session) == before


@pytest.mark.parametrize("display", [(WIDTH, HEIGHT), (48, 32), (37, 100), (500, 500), (96, 20)])
def test_clicks_map_to_the_same_frame_pixel_at_any_display_size(frames, display):
    ui = Interaction(predictor(), display_size=display)
    ui.open(frames)
    mapping = DisplayMapping.fit((WIDTH, HEIGHT), display)
    target = (61.0, 17.0)
    u, v = mapping.to_display(*target)
    ui.click(u, v)
    ((x, y, _),) = ui.session.prompts(0)[1].points
    assert (x, y) == pytest.approx(target, abs=1e-6)
    assert ui.view().image.shape[:2] == mapping.display_size[::-1]
    ui.close()


# ---------------------------------------------------------------------------------------- keys and commands
def test_every_key_names_a_command_and_every_keyed_command_runs(ui):
    assert set(KEYMAP.values()) <= set(COMMANDS)
    ui.click(*display_of(*disc_centre(0)))
    for key in KEYMAP:
        if KEYMAP[key].startswith("propagate_"):
            continue  # tracking is pinned below
        view = ui.key(key)
        assert not any(e.startswith("Unknown command") for e in view.errors), key


def test_delete_and_backspace_remove_the_selected_objects_last_point_on_this_frame(ui):
    first, second = disc_centre(0), block_box(0)[:2]
    ui.add_point(0, None, *first)
    ui.add_point(0, None, *second, positive=False)
    ui.add_object()  # object 2, selected, has no point: Delete says what it does instead
    view = ui.key("Delete")
    assert "'object 2' has no point on this frame" in view.errors[0]
    assert "Delete removes the selected object's last point" in view.errors[0]
    ui.select_object(1)
    view = ui.key("Delete")
    assert view.errors == [] and [p[:2] for p in ui.session.prompts(0)[1].points] == [first]
    assert any("Removed the last point of 'object 1'" in m.text for m in view.messages)
    ui.key("Backspace")
    assert 1 not in ui.session.prompts(0)
    assert "remove_last_point" in COMMANDS and command_for_key("Backspace") == "remove_last_point"


def test_keyboard_sequence_drives_objects_tools_undo_and_frames(ui):
    view = ui.key("a")
    view = ui.key("A")
    assert [r.id for r in view.objects] == [1, 2] and view.selected == 2
    assert [r.key for r in view.objects] == ["1", "2"]
    assert ui.key("1").selected == 1
    assert any("no object 3" in e for e in ui.key("3").errors)
    assert ui.key("n").tool == NEGATIVE and ui.key("b").tool == BOX and ui.key("p").tool == POSITIVE
    ui.click(*display_of(*disc_centre(0)))
    assert ui.key("z").objects[0].timeline[0] == NOTHING
    assert ui.key("y").objects[0].timeline[0] == PROMPTED
    ui.key("z", ctrl=True)
    assert ui.key("z", ctrl=True, shift=True).objects[0].timeline[0] == PROMPTED
    assert [ui.key(k).frame for k in ("ArrowRight", ".", ",", "End", "Home", "ArrowLeft")] == [
        1,
        2,
        1,
        5,
        0,
        0,
    ]
    assert names(ui.calls).count("undo") == 2 and names(ui.calls).count("redo") == 2
    assert command_for_key("q") is None and ui.key("q").errors == []


def test_object_commands_reach_the_engine(ui):
    ui.command("add_object", name="car")
    ui.command("add_object")
    view = ui.rename_object(None, "truck")
    assert [r.name for r in view.objects] == ["car", "truck"]
    view = ui.command("remove_object")
    assert [r.id for r in view.objects] == [1] and view.selected == 1
    assert names(ui.calls) == ["add_object", "add_object", "rename_object", "remove_object", "select_object"]
    assert any("undo brings it back" in m.text for m in view.messages)
    assert ui.command("frobnicate").errors == ["Unknown command 'frobnicate'."]


def test_clear_frame_clear_object_and_reset(ui):
    ui.click(*display_of(*disc_centre(0)))
    ui.go_to(2)
    ui.click(*display_of(*disc_centre(2)))
    view = ui.command("clear_frame")
    assert view.objects[0].timeline[2] == NOTHING and view.objects[0].timeline[0] == PROMPTED
    view = ui.command("clear_object")
    assert view.objects[0].timeline == NOTHING * NUM_FRAMES
    ui.click(*display_of(*disc_centre(2)))
    view = ui.command("reset")
    assert set(view.objects[0].timeline) == {NOTHING} and not view.enabled["reset"]
    assert names(ui.calls).count("clear") == 3


def test_enabled_buttons_follow_the_state(ui, frames):
    view = ui.view()
    assert not view.enabled["undo"] and not view.enabled["propagate_both"] and not view.enabled["export"]
    assert not view.enabled["prev_frame"] and view.enabled["next_frame"]
    view = ui.click(*display_of(*disc_centre(0)))
    assert view.enabled["undo"] and view.enabled["propagate_both"] and view.enabled["export"]
    assert view.enabled["propagate_forward"] and not view.enabled["propagate_backward"]  # on frame 0
    assert not view.enabled["stop"]
    image = Interaction(predictor())
    view = image.open(frames[0])
    view = image.click(*DisplayMapping.fit((WIDTH, HEIGHT)).to_display(*disc_centre(0)))
    assert view.is_image and not view.enabled["propagate_both"] and not view.enabled["next_frame"]
    image.close()


# ------------------------------------------------------------------------------------------------- tracking
def test_propagation_streams_views_that_follow_the_tracked_frame(ui):
    ui.click(*display_of(*disc_centre(0)))
    views = list(ui.propagate("forward"))
    running = [v for v in views if v.progress is not None]
    assert [v.frame for v in running] == list(range(NUM_FRAMES))
    assert [v.progress.done for v in running] == list(range(1, NUM_FRAMES + 1))
    assert all(v.enabled["stop"] and not v.enabled["add_object"] for v in running)
    final = views[-1]
    assert final.progress is None and final.enabled["propagate_both"]
    assert final.objects[0].timeline == PROMPTED + MASKED * (NUM_FRAMES - 1)
    assert any(m.text.startswith("Tracked forward: 6 of 6 frames") for m in final.messages)
    assert ("propagate", ("forward",), {"start": 0}) in ui.calls
    assert ui.session.tracked_frames(1) == list(range(NUM_FRAMES))


def test_tracking_starts_from_the_current_frame(ui):
    ui.click(*display_of(*disc_centre(0)))
    ui.go_to(3)
    list(ui.propagate("backward"))
    assert ("propagate", ("backward",), {"start": 3}) in ui.calls
    assert ui.session.tracked_frames(1) == [0, 1, 2, 3]


def test_stop_from_another_thread_ends_the_run_within_one_frame(ui):
    ui.click(*display_of(*disc_centre(0)))
    run = ui.propagate("forward")
    first = next(run)
    assert first.progress.done == 1
    stopper = threading.Thread(target=ui.stop)
    stopper.start()
    stopper.join()
    rest = list(run)
    summary = ui.session.last_propagation
    assert summary.cancelled and summary.done == 1  # the run was between frames 1 and 2 when stopped
    assert any(m.text.startswith("Stopped forward") for m in rest[-1].messages)
    assert not rest[-1].enabled["stop"] and rest[-1].enabled["propagate_both"]


@pytest.mark.slow
def test_an_announced_run_shows_stop_and_its_own_progress_before_its_first_frame(ui):
    ui.click(*display_of(*disc_centre(0)))
    list(ui.propagate("forward"))
    ui.go_to(2)
    run = ui.propagate("forward", announce=True)
    first = next(run)  # nothing tracked yet
    assert (first.progress.done, first.progress.total) == (0, NUM_FRAMES - 2)
    assert first.enabled["stop"] and not first.enabled["propagate_both"] and not first.enabled["undo"]
    assert first.enabled["next_frame"] and "Tracking forward" in first.status
    assert any("Stopping" in m.text for m in ui.stop().messages)  # Stop works from the first moment
    rest = list(run)
    summary = ui.session.last_propagation
    assert summary.cancelled and summary.done == 0
    assert any(m.text.startswith("Stopped forward: 0 of 4") for m in rest[-1].messages)
    assert not rest[-1].enabled["stop"] and rest[-1].enabled["propagate_both"]


@pytest.mark.slow
def test_an_announced_run_closed_before_it_starts_leaves_no_trace(ui):
    ui.click(*display_of(*disc_centre(0)))
    run = ui.propagate("forward", announce=True)
    next(run)
    run.close()
    view = ui.view()
    assert view.progress is None and not view.enabled["stop"] and ui.session.last_propagation is None
    assert not any(n.startswith(("Tracked", "Stopped")) for n in view.notes)
    assert len([v for v in ui.propagate("forward") if v.progress is not None]) == NUM_FRAMES


def test_tracking_with_nothing_to_track_is_an_error_message(ui):
    views = list(ui.propagate("both"))
    assert len(views) == 1 and "Nothing to track yet" in views[0].errors[0]
    assert "propagate" in names(ui.calls) and not ui.session.is_propagating


@pytest.mark.slow
def test_a_correction_marks_tracked_frames_stale_on_the_timeline(ui):
    ui.click(*display_of(*disc_centre(0)))
    list(ui.propagate("forward"))
    assert ui.view().frame == NUM_FRAMES - 1  # the view followed the run
    ui.go_to(0)
    view = ui.click(*display_of(*block_box(0)[:2]), negative=True)
    assert view.objects[0].timeline == PROMPTED + STALE * (NUM_FRAMES - 1)
    assert view.stats["stale"] == NUM_FRAMES - 1 and "stale frames" in view.status


@pytest.mark.slow
def test_doubtful_masks_show_on_the_timeline_and_in_the_status(ui):
    ui.click(*display_of(*disc_centre(0)))
    list(ui.propagate("forward"))
    ui.session.doubt_rule = DoubtRule(min_iou=2.0)  # every predicted IoU is below 2
    view = ui.view()
    assert view.objects[0].timeline == PROMPTED + DOUBTFUL * (NUM_FRAMES - 1)
    assert "doubtful" in view.status and view.stats["doubtful"] == NUM_FRAMES - 1
    assert "This frame is doubtful: the model rates this mask poorly" in view.status  # on frame 5
    assert "This frame is doubtful" not in ui.go_to(0).status  # the prompted frame


@pytest.mark.slow
def test_estimate_before_a_run_uses_the_seconds_per_frame_measured(ui):
    ui.click(*display_of(*disc_centre(0)))
    assert ui.view().estimate == "Tracking both ways from frame 0 visits 6 frames."
    list(ui.propagate("forward"))
    ui.go_to(2)
    estimate = ui.view().estimate
    count, seconds = ui.session.estimate_seconds("both", start=2)
    assert estimate.startswith(f"Tracking both ways from frame 2: {count} frames, about")
    assert seconds == pytest.approx(count * ui.session.seconds_per_frame)


# -------------------------------------------------------------------------------------------- exports, load
def test_exports_write_each_kind_with_the_session_masks(ui, tmp_path):
    ui.click(*display_of(*disc_centre(0)))
    list(ui.propagate("forward"))
    paths = {kind: ui.export(kind, tmp_path / kind) for kind in ("pngs", "davis", "coco", "video", "session")}
    assert all(p.is_file() for p in paths.values())
    with zipfile.ZipFile(paths["pngs"]) as archive:
        names_ = sorted(n for n in archive.namelist() if n.endswith(".png"))
        assert len(names_) == NUM_FRAMES
        with archive.open(names_[3]) as f:
            assert np.array_equal(np.asarray(Image.open(f)) > 0, ui.session.mask(3, 1))
    view = ui.command("export", kind="coco", out_dir=tmp_path / "by_command")
    assert ui.last_export.is_file() and view.notes[-1] == f"Wrote {ui.last_export.name}."
    view = ui.command("export")
    assert view.errors[0].startswith("Command 'export' takes kind, out_dir")
    with pytest.raises(SessionError, match="Nothing to export yet"):
        Interaction(predictor()).export("coco", tmp_path)


@pytest.mark.slow
def test_restoring_needs_the_media_and_gives_back_the_same_masks(ui, frames, tmp_path):
    ui.click(*display_of(*disc_centre(0)))
    list(ui.propagate("forward"))
    saved = ui.export("session", tmp_path)
    expected = all_masks(ui.session)
    other = Interaction(predictor(), display_size=DISPLAY)
    view = other.load(saved, None)
    assert view.errors == ["Upload the session's video or image together with its session file."]
    assert other.session is None
    view = other.load(saved, frames)
    assert not view.errors and [r.id for r in view.objects] == [1]
    assert_same_masks(all_masks(other.session), expected)
    view = other.load(saved, make_frames(num_frames=4))
    assert view.errors and other.session.num_frames == NUM_FRAMES  # the restored session stays
    other.close()


def test_sessions_can_keep_their_tracking_state_on_the_cpu(frames, tmp_path):
    ui = Interaction(predictor(), display_size=DISPLAY, state_on_cpu=True)
    ui.open(frames)
    state = ui.session._executor.state
    assert state.offload_state_to_cpu and state.storage_device.type == "cpu"
    ui.click(*display_of(*disc_centre(0)))
    restored = Interaction(predictor(), display_size=DISPLAY, state_on_cpu=True)
    restored.load(ui.export("session", tmp_path), frames)
    assert restored.session._executor.state.offload_state_to_cpu
    ui.close()
    restored.close()


def test_a_point_on_a_missing_frame_is_refused_and_the_current_frame_kept(ui):
    ui.go_to(2)
    view = ui.add_point(9, None, 5.0, 5.0)
    assert view.frame == 2 and view.errors == ["Frame 9 does not exist: the video has frames 0 to 5."]
    assert [r.id for r in view.objects] == [1]  # the object made for the first point stays (undoable)
    view = ui.add_point(4, None, *disc_centre(4))
    assert view.frame == 4 and view.errors == [] and view.objects[0].timeline[4] == PROMPTED


def test_stop_can_wait_for_the_run_to_end_and_show_where_it_stopped(ui):
    ui.click(*display_of(*disc_centre(0)))
    started, go = threading.Event(), threading.Event()
    views = []

    def consume():  # a front end drawing views in its own thread; it pauses after the first one
        for view in ui.propagate("forward"):
            views.append(view)
            started.set()
            go.wait(60)

    worker = threading.Thread(target=consume)
    worker.start()
    assert started.wait(60)
    threading.Timer(0.2, go.set).start()  # the consumer goes on while stop waits
    view = ui.stop(wait_s=30)
    worker.join(60)
    assert view.progress is None and not view.enabled["stop"]
    assert view.notes[-1] == views[-1].notes[-1] and view.notes[-1].startswith("Stopped forward: 1 of 6")
    assert ui.session.last_propagation.cancelled and ui.session.last_propagation.done == 1
    assert ui.view().notes == view.notes  # notes stay in later views for the status line


def test_closing_while_a_video_opens_closes_the_new_session_too(frames, monkeypatch):
    ui = Interaction(predictor(), display_size=DISPLAY)
    opened = []
    original = Session.open

    def open_then_tab_closes(*args, **kwargs):
        session = original(*args, **kwargs)
        opened.append(session)
        ui.close()  # the tab went away while the upload was being opened
        return session

    monkeypatch.setattr(Session, "open", open_then_tab_closes)
    view = ui.open(frames)
    assert ui.session is None and view.errors == ["This session was closed: reload the page to start again."]
    assert opened[0]._executor.state.objects == [] and opened[0]._guard.cancel.is_set()


def damage_frame_3(ui: Interaction, monkeypatch) -> None:
    """Frame 3 of the session's video cannot be decoded from now on (until monkeypatch undoes it)."""
    from model.errors import VideoSourceError

    source = ui.session._media.frames
    original = source.rgb

    def broken(index):
        if index == 3:
            raise VideoSourceError("frame 3 is damaged")
        return original(index)

    monkeypatch.setattr(source, "rgb", broken)


def test_an_undecodable_frame_is_a_warning_and_other_frames_still_work(ui, monkeypatch):
    damage_frame_3(ui, monkeypatch)
    view = ui.go_to(3)
    assert view.image is None and view.errors == [] and "frame 3 is damaged" in view.messages[0].text
    view = ui.go_to(1)
    assert view.image is not None
    view = ui.click(*display_of(*disc_centre(1)))
    assert view.errors == [] and view.objects[0].timeline[1] == PROMPTED


def test_tracking_into_a_damaged_frame_stops_with_a_message_and_keeps_what_was_tracked(ui, monkeypatch):
    ui.click(*display_of(*disc_centre(0)))
    source, original = ui.session._media.frames, ui.session._media.frames.rgb
    damage_frame_3(ui, monkeypatch)
    views = list(ui.propagate("forward"))
    assert "Tracking stopped: frame 3 is damaged" in views[-1].errors[0]
    assert not any(n.startswith("Tracked") for n in views[-1].notes)
    assert ui.session.tracked_frames(1) == [0, 1, 2] and not ui.session.is_propagating
    monkeypatch.setattr(source, "rgb", original)
    assert ui.click(*display_of(*disc_centre(1))).errors == []  # the session keeps working
