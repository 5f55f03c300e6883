"""Objects, prompts, undo/redo, and user errors that leave the session as it was."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_ui import Limits, Session, SessionError, object_color
from tests.support.session_helpers import (
    HEIGHT,
    NUM_FRAMES,
    WIDTH,
    all_masks,
    assert_same_masks,
    block_box,
    disc_centre,
    predictor,
    state_of,
)


@pytest.fixture
def session(frames):
    """A session with no object yet (these tests make their own), instead of the conftest's prompted one."""
    with Session.open(frames, predictor()) as s:
        yield s


# ------------------------------------------------------------------------------------------------ objects
def test_objects_get_stable_ids_names_and_colours(session):
    a = session.add_object("car")
    b = session.add_object()
    assert (a, b) == (1, 2)
    assert [o.name for o in session.objects] == ["car", "object 2"]
    assert session.colors == {1: object_color(1), 2: object_color(2)}
    assert session.selected == b  # a new object is selected
    session.rename_object(b, "  red   bike ")
    assert session.object(b).name == "red bike"
    session.select_object(a)
    assert session.selected == a
    session.remove_object(a)
    assert [o.id for o in session.objects] == [b] and session.selected is None
    assert session.add_object() == 3  # ids are never reused


def test_ids_are_not_reused_after_an_undone_add(session):
    first = session.add_object()
    session.undo()
    assert session.objects == []
    assert session.add_object() == first + 1
    session.undo()
    session.redo()  # redo brings back the same object with its own id
    assert [o.id for o in session.objects] == [first + 1]


def test_there_is_no_limit_on_objects_and_early_colours_differ(session):
    ids = [session.add_object() for _ in range(40)]
    assert ids == list(range(1, 41))
    colours = [session.object(i).color for i in ids]
    assert len(set(colours[:20])) == 20
    assert len(set(colours)) == 40


def test_object_edits_are_undoable(session):
    a = session.add_object("one")
    session.rename_object(a, "two")
    session.remove_object(a)
    assert session.objects == []
    assert session.undo() == "remove object"
    assert session.object(a).name == "two"
    assert session.undo() == "rename object"
    assert session.object(a).name == "one"
    session.redo()
    session.redo()
    assert session.objects == []


# ------------------------------------------------------------------------------------------------ prompts
def test_points_boxes_and_masks_make_masks_on_their_frame(session):
    a, b, c = session.add_object(), session.add_object(), session.add_object()
    masks = session.add_point(0, a, *disc_centre(0))
    assert set(masks) == {a} and masks[a].shape == (HEIGHT, WIDTH) and masks[a].any()
    masks = session.add_point(0, a, 80, 5, positive=False)
    assert set(masks) == {a}
    masks = session.add_box(2, b, *block_box(2))
    assert set(masks) == {b} and masks[b].any()
    painted = np.zeros((HEIGHT, WIDTH), bool)
    painted[10:30, 10:40] = True
    masks = session.add_mask(4, c, painted)
    assert masks[c].any()
    assert session.prompted_frames() == [0, 2, 4]
    prompts = session.prompts(0)[a]
    assert prompts.points == ((*disc_centre(0), True), (80.0, 5.0, False))
    assert session.prompts(2)[b].box == block_box(2)
    assert np.array_equal(session.prompts(4)[c].mask, painted)
    assert session.tracked_frames() == [0, 2, 4]


def test_prompts_go_to_the_selected_object_when_none_is_given(session):
    with pytest.raises(SessionError, match="No object is selected"):
        session.add_point(0, None, 10, 10)
    a = session.add_object()
    session.add_point(0, None, 10, 10)
    assert list(session.prompts(0)) == [a]


def test_a_box_keeps_the_clicks_and_replaces_the_earlier_box(session):
    a = session.add_object()
    session.add_point(1, a, *disc_centre(1))
    session.add_box(1, a, 5, 5, 40, 40)
    session.add_box(1, a, 40, 40, 8, 6)  # corners in any order
    prompts = session.prompts(1)[a]
    assert prompts.box == (8.0, 6.0, 40.0, 40.0)
    assert prompts.points == ((*disc_centre(1), True),)


def test_a_box_overshooting_the_frame_is_clipped(session):
    a = session.add_object()
    session.add_box(0, a, -20, 30, WIDTH + 5, HEIGHT + 9)
    assert session.prompts(0)[a].box == (0.0, 30.0, WIDTH - 1.0, HEIGHT - 1.0)


def test_a_mask_prompt_replaces_the_clicks_and_a_click_replaces_the_mask(session):
    a = session.add_object()
    session.add_point(0, a, *disc_centre(0))
    painted = np.zeros((HEIGHT, WIDTH), np.uint8)
    painted[5:20, 5:20] = 255
    session.add_mask(0, a, painted)
    assert session.prompts(0)[a].points == () and session.prompts(0)[a].mask is not None
    session.add_point(0, a, 12, 12)
    assert session.prompts(0)[a].mask is None and session.prompts(0)[a].points == ((12.0, 12.0, True),)


def test_removing_a_point_resends_the_others(session):
    a = session.add_object()
    session.add_point(0, a, *disc_centre(0))
    session.add_point(0, a, 60, 10, positive=False)
    session.add_point(0, a, 30, 30)
    session.remove_point(0, a, 1)
    assert session.prompts(0)[a].points == ((*disc_centre(0), True), (30.0, 30.0, True))
    assert session.find_point(0, 30.5, 29.5) == (a, 1)
    assert session.find_point(0, 60, 50) is None


def test_removing_the_last_point_clears_the_frame(session):
    a = session.add_object()
    session.add_point(0, a, *disc_centre(0))
    session.remove_point(0, a, 0)
    assert session.prompts(0) == {} and session.masks(0) == {}


def test_clear_one_object_on_a_frame_a_whole_frame_an_object_or_everything(session):
    a, b = session.add_object(), session.add_object()
    for frame in (0, 3):
        session.add_point(frame, a, *disc_centre(frame))
        session.add_box(frame, b, *block_box(frame))
    session.clear(frame=0, obj=a)
    assert set(session.prompts(0)) == {b} and set(session.masks(0)) == {b}
    session.clear(frame=3)
    assert session.prompts(3) == {} and session.masks(3) == {}
    session.add_point(5, a, *disc_centre(5))
    session.clear(obj=a)
    assert session.prompted_frames(a) == [] and session.tracked_frames(a) == []
    assert session.prompted_frames(b) == [0]
    session.clear()
    assert session.prompted_frames() == [] and all_masks(session) == {}
    assert [o.id for o in session.objects] == [a, b]  # clearing keeps the objects


# ------------------------------------------------------------------------------------------------ undo
@pytest.mark.slow
def test_every_edit_undoes_to_the_exact_masks_before_it_and_redoes_to_after(session):
    """Walk a session through every kind of edit, then undo all of it and redo all of it."""
    a, b = session.add_object(), session.add_object()
    painted = np.zeros((HEIGHT, WIDTH), bool)
    painted[35:56, 60:80] = True
    edits = [
        lambda: session.add_point(0, a, *disc_centre(0)),
        lambda: session.add_point(0, a, 70, 50, positive=False),
        lambda: session.add_box(1, b, *block_box(1)),
        lambda: session.add_mask(3, b, painted),
        lambda: list(session.propagate("forward")),
        lambda: session.add_point(2, a, *disc_centre(2)),  # a correction on a tracked frame
        lambda: session.remove_point(0, a, 1),
        lambda: session.clear(frame=3, obj=b),
        lambda: session.rename_object(b, "block"),
        lambda: session.remove_object(a),
        lambda: session.clear(),
    ]
    states = [state_of(session)]
    masks = [all_masks(session)]
    for edit in edits:
        edit()
        states.append(state_of(session))
        masks.append(all_masks(session))
    # masks[i] is after edit i - 1: tracking filled frames, and the correction changed its frame
    assert len(masks[5]) > len(masks[4])
    assert not np.array_equal(masks[5][2, a], masks[6][2, a])
    for i in range(len(edits), 0, -1):
        session.undo()
        assert_same_masks(all_masks(session), masks[i - 1])
        assert {k: v for k, v in state_of(session).items() if k != "can_redo"} == {
            k: v for k, v in states[i - 1].items() if k != "can_redo"
        }
    for i in range(1, len(edits) + 1):
        session.redo()
        assert_same_masks(all_masks(session), masks[i])
    assert not session.can_redo


@pytest.mark.slow
def test_a_click_after_undo_gives_what_it_gives_without_the_undone_edits(frames):
    """The predictor's state is rebuilt from the prompt log, so undone edits leave no trace in it."""
    with Session.open(frames, predictor()) as edited, Session.open(frames, predictor()) as direct:
        for s in (edited, direct):
            s.add_object()
            s.add_point(0, 1, *disc_centre(0))
            list(s.propagate("forward", end=3))
        edited.add_point(2, 1, 40, 40, positive=False)
        list(edited.propagate("forward", start=2))
        edited.undo()
        edited.undo()
        for s in (edited, direct):
            s.add_point(2, 1, *disc_centre(2))  # a correction: uses the tracked memory of frames 0-1
        assert_same_masks(all_masks(edited), all_masks(direct))


def test_a_bounded_history_forgets_old_steps_but_keeps_their_prompts(frames):
    with Session.open(frames, predictor(), limits=Limits(max_undo=2)) as s:
        a = s.add_object()
        for x in (10, 20, 30):
            s.add_point(0, a, x, 10)
        s.undo()
        s.undo()
        with pytest.raises(SessionError, match="Nothing to undo"):
            s.undo()
        assert s.prompts(0)[a].points == ((10.0, 10.0, True),)
        assert len(s.prompt_log) == 1
        s.redo()
        s.add_point(1, a, 40, 40)  # the predictor state is rebuilt from the whole log
        assert s.prompted_frames() == [0, 1]


def test_a_new_edit_after_undo_drops_the_redo_steps(session):
    a = session.add_object()
    session.add_point(0, a, *disc_centre(0))
    session.undo()
    assert session.can_redo
    session.add_point(0, a, 10, 10)
    assert not session.can_redo
    with pytest.raises(SessionError, match="Nothing to redo"):
        session.redo()


# ------------------------------------------------------------------------------------------------ errors
def test_user_errors_raise_session_error_and_change_nothing(session):
    a = session.add_object()
    session.add_point(0, a, *disc_centre(0))
    session.add_box(1, a, *block_box(1))
    before = state_of(session)
    bad_calls = {
        "outside": lambda: session.add_point(0, a, WIDTH - 0.5, 10),
        "outside left": lambda: session.add_point(0, a, -0.6, 10),
        "outside below": lambda: session.add_point(0, a, 10, HEIGHT),
        "not a number": lambda: session.add_point(0, a, float("nan"), 10),
        "unknown object": lambda: session.add_point(0, 99, 10, 10),
        "frame past the end": lambda: session.add_point(NUM_FRAMES, a, 10, 10),
        "negative frame": lambda: session.add_box(-1, a, 1, 1, 20, 20),
        "box outside": lambda: session.add_box(0, a, WIDTH + 1, 0, WIDTH + 20, 20),
        "flat box": lambda: session.add_box(0, a, 10, 10, 30, 10.5),
        "empty mask": lambda: session.add_mask(0, a, np.zeros((HEIGHT, WIDTH), bool)),
        "no such point": lambda: session.remove_point(0, a, 1),
        "no point on frame": lambda: session.remove_point(2, a, 0),
        "rename unknown": lambda: session.rename_object(7, "x"),
        "empty name": lambda: session.rename_object(a, "   "),
        "remove unknown": lambda: session.remove_object(7),
        "select unknown": lambda: session.select_object(7),
        "clear unknown": lambda: session.clear(obj=7),
        "clear bad frame": lambda: session.clear(frame=NUM_FRAMES),
        "track from bad frame": lambda: session.propagate(start=NUM_FRAMES),
        "track backward to a later frame": lambda: session.propagate("backward", start=2, end=4),
        "track forward to an earlier frame": lambda: session.propagate("forward", start=2, end=1),
        "both outside its range": lambda: session.propagate("both", start=5, end=(0, 3)),
    }
    for name, call in bad_calls.items():
        with pytest.raises(SessionError) as error:
            call()
        assert str(error.value), name
        assert state_of(session) == before, f"{name} changed the session"


def test_undo_and_redo_with_nothing_to_do_say_so(session):
    with pytest.raises(SessionError, match="Nothing to undo"):
        session.undo()
    session.add_object()
    with pytest.raises(SessionError, match="Nothing to redo"):
        session.redo()


def test_tracking_without_prompts_says_what_to_do(session):
    session.add_object()
    with pytest.raises(SessionError, match="add a point, box or mask"):
        session.propagate()


def test_programming_errors_stay_value_and_type_errors(session):
    a = session.add_object()
    with pytest.raises(ValueError, match="mask is"):
        session.add_mask(0, a, np.ones((HEIGHT + 1, WIDTH), bool))
    with pytest.raises(TypeError):
        session.add_point(1.5, a, 10, 10)
    with pytest.raises(ValueError, match="direction"):
        session.propagate("sideways")
