"""Tracking runs: progress events, ranges and directions, cancel from another thread, stale frames, reads
during a run, and parity with the bare video predictor."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sam2_ui import PropagationProgress, Session, SessionError
from tests.support.session_helpers import (
    NUM_FRAMES,
    all_masks,
    assert_same_masks,
    block_box,
    disc_centre,
    predictor,
    state_of,
)


def _frames_of(events: list[PropagationProgress]) -> list[int]:
    return [e.frame_index for e in events]


# ------------------------------------------------------------------------------------------------ events
@pytest.mark.slow
def test_forward_events_come_in_order_with_counts_times_and_masks(session):
    events = list(session.propagate("forward"))
    assert _frames_of(events) == [2, 3, 4, 5]
    assert [e.done for e in events] == [1, 2, 3, 4]
    assert {e.total for e in events} == {4}
    assert {e.direction for e in events} == {"forward"}
    elapsed = [e.elapsed_s for e in events]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    assert events[-1].eta_s == 0 and all(e.eta_s >= 0 for e in events)
    for e in events:
        assert set(e.masks) == {1, 2}
        for obj, mask in e.masks.items():
            assert np.array_equal(mask, session.mask(e.frame_index, obj))
    assert session.tracked_frames() == [2, 3, 4, 5]
    summary = session.last_propagation
    assert (summary.done, summary.total, summary.cancelled) == (4, 4, False)


@pytest.mark.slow
def test_backward_runs_from_the_last_prompted_frame_down(session):
    assert _frames_of(session.propagate("backward")) == [2, 1, 0]


@pytest.mark.slow
def test_both_runs_forward_then_backward_from_the_start(session):
    events = list(session.propagate("both"))
    assert _frames_of(events) == [2, 3, 4, 5, 2, 1, 0]
    assert [e.done for e in events] == list(range(1, 8)) and events[0].total == 7
    assert [e.direction for e in events] == ["forward"] * 4 + ["backward"] * 3
    assert session.tracked_frames() == list(range(NUM_FRAMES))


@pytest.mark.slow
def test_a_range_limits_the_frames_tracked(session):
    assert _frames_of(session.propagate("forward", start=2, end=3)) == [2, 3]
    assert _frames_of(session.propagate("backward", start=4, end=3)) == [4, 3]
    assert _frames_of(session.propagate("both", start=2, end=(1, 3))) == [2, 3, 2, 1]
    assert session.tracked_frames() == [1, 2, 3, 4]


@pytest.mark.slow
def test_a_whole_run_is_one_undo_step_restoring_the_masks_exactly(session):
    before = all_masks(session)
    list(session.propagate("both"))
    after = all_masks(session)
    assert session.undo() == "propagate both"
    assert_same_masks(all_masks(session), before)
    session.redo()
    assert_same_masks(all_masks(session), after)


# ------------------------------------------------------------------------------------------------ cancel
def test_cancel_from_another_thread_stops_before_the_next_frame(session):
    before = all_masks(session)
    two_done, cancelled = threading.Event(), threading.Event()
    seen: list[int] = []

    def worker():
        for event in session.propagate("forward", start=0):
            seen.append(event.frame_index)
            if event.done == 2:
                two_done.set()
                cancelled.wait(30)

    thread = threading.Thread(target=worker)
    thread.start()
    assert two_done.wait(60)
    assert session.is_propagating
    assert session.cancel() is True
    cancelled.set()
    thread.join(60)
    assert not thread.is_alive()
    assert seen == [0, 1]
    assert not session.is_propagating
    summary = session.last_propagation
    assert (summary.done, summary.total, summary.cancelled) == (2, NUM_FRAMES, True)
    # frames done are kept, as one undoable step
    assert session.tracked_frames() == [0, 1, 2]
    assert session.prompt_log[-1].legs[0].count == 2
    session.undo()
    assert_same_masks(all_masks(session), before)


@pytest.mark.slow
def test_cancel_while_a_frame_is_computed_stops_within_one_frame(session):
    started = threading.Event()
    seen: list[int] = []

    def worker():
        for event in session.propagate("both"):
            seen.append(event.frame_index)
            started.set()

    thread = threading.Thread(target=worker)
    thread.start()
    assert started.wait(60)
    done_at_cancel = len(seen)
    session.cancel()
    thread.join(60)
    assert done_at_cancel <= len(seen) <= done_at_cancel + 1 < 7
    assert session.last_propagation.cancelled
    # the session works on: edits go through and the predictor is consistent
    session.add_point(4, 1, *disc_centre(4))
    assert 4 in session.tracked_frames(1)


def test_cancel_before_the_run_starts_tracks_nothing(session):
    before = state_of(session)
    run = session.propagate("forward")
    session.cancel()
    assert list(run) == []
    assert state_of(session) == before


def test_closing_the_generator_keeps_the_frames_done(session):
    run = session.propagate("forward")
    next(run)
    next(run)
    run.close()
    assert not session.is_propagating
    assert session.tracked_frames() == [2, 3]
    assert session.last_propagation.cancelled


# ------------------------------------------------------------------------------------------------ threads
@pytest.mark.slow
def test_reads_work_and_edits_are_refused_while_a_run_goes_on(session, tmp_path):
    paused, resume = threading.Event(), threading.Event()

    def worker():
        for event in session.propagate("forward"):
            if event.done == 2:
                paused.set()
                resume.wait(30)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert paused.wait(60)
        assert session.tracked_frames() == [2, 3]  # masks stream in
        image, _ = session.render(3)
        assert image.shape == (64, 96, 3)
        assert set(session.masks(3)) == {1, 2}
        for edit in (
            lambda: session.add_point(0, 1, 10, 10),
            lambda: session.undo(),
            lambda: session.add_object(),
            lambda: session.propagate(),
            lambda: session.save(tmp_path / "session.json"),
        ):
            with pytest.raises(SessionError, match="Tracking is running"):
                edit()
    finally:
        resume.set()
        thread.join(60)
    assert session.tracked_frames() == [2, 3, 4, 5]
    assert not (tmp_path / "session.json").exists()


# ------------------------------------------------------------------------------------------------ stale
@pytest.mark.slow
def test_a_correction_marks_other_tracked_frames_of_that_object_stale(session):
    list(session.propagate("both"))
    assert session.stale_frames() == []
    session.add_point(4, 1, *disc_centre(4), positive=False)  # a correction of the disc on a tracked frame
    assert session.stale_frames(1) == [0, 1, 3, 5]  # prompted frames 2 and 4 are not stale
    assert session.stale_frames(2) == []
    assert session.stale_frames() == [0, 1, 3, 5]
    list(session.propagate("forward", start=4))  # refreshes 4 and 5 only
    assert session.stale_frames() == [0, 1, 3]
    list(session.propagate("backward", start=4))
    assert session.stale_frames() == []
    session.undo()
    assert session.stale_frames() == [0, 1, 3]
    session.undo()
    session.undo()
    assert session.stale_frames() == []


@pytest.mark.slow
def test_clearing_a_prompt_marks_the_masks_tracked_from_it_stale(session):
    list(session.propagate("forward"))
    session.add_point(4, 2, *block_box(4)[:2], positive=False)
    session.clear(frame=4, obj=2)
    assert session.stale_frames() == [3, 5]
    assert 4 not in session.tracked_frames(2)


@pytest.mark.slow
def test_frames_the_predictor_would_not_track_are_a_session_error(frames):
    with Session.open(frames, predictor(), corrections_as_conditioning=False) as s:
        a = s.add_object()
        s.add_point(0, a, *disc_centre(0))
        list(s.propagate("forward", end=3))
        s.add_point(2, a, *disc_centre(2))  # a correction, not a new conditioning frame
        s.clear(frame=0, obj=a)  # the only conditioning frame is gone
        before = state_of(s)
        with pytest.raises(SessionError, match="Cannot track"):
            list(s.propagate("forward", start=2))
        assert state_of(s) == before
        s.add_point(5, a, *disc_centre(5))  # an untracked frame: a conditioning frame again
        assert [e.frame_index for e in s.propagate("backward")] == [5, 4, 3, 2, 1, 0]


# ------------------------------------------------------------------------------------------------ parity
@pytest.mark.slow
@pytest.mark.parametrize("as_cond", [True, False], ids=["corrections_as_conditioning", "official_default"])
def test_engine_masks_equal_the_bare_video_predictor_for_the_same_prompts(frames, as_cond):
    p = predictor()
    p.add_all_frames_to_correct_as_cond = as_cond  # the bare predictor's setting for every video
    state = p.init_state(frames)
    session = Session.open(frames, p, corrections_as_conditioning=as_cond)
    assert session.corrections_as_conditioning is as_cond
    a, b = session.add_object(), session.add_object()

    def bare(out) -> dict[int, np.ndarray]:
        frame_idx, obj_ids, logits = out
        return {int(o): (logits[i, 0] > 0).cpu().numpy() for i, o in enumerate(obj_ids)}

    def check(frame, ours, theirs):
        for obj, mask in theirs.items():
            if obj in ours:
                assert np.array_equal(ours[obj], mask), (frame, obj)
            else:
                assert not mask.any(), (frame, obj)
        assert set(ours) <= set(theirs)

    def click(frame, obj, x, y, positive):
        ours = session.add_point(frame, obj, x, y, positive)
        theirs = p.add_new_points_or_box(state, frame, obj, [[x, y]], [int(positive)], clear_old_points=False)
        check(frame, ours, bare(theirs))

    try:
        click(0, a, *disc_centre(0), True)
        click(0, a, 70, 50, False)
        check(
            1,
            session.add_box(1, b, *block_box(1)),
            bare(p.add_new_points_or_box(state, 1, b, box=block_box(1))),
        )
        click(1, b, 60, 10, False)
        # an edit that is undone leaves no trace in the engine's predictor state
        session.add_point(3, a, 50, 50)
        session.undo()
        for event, out in zip(session.propagate("forward"), p.propagate_in_video(state, start_frame_idx=0)):
            assert event.frame_index == out[0]
            check(event.frame_index, event.masks, bare(out))
        click(3, a, *disc_centre(3), True)  # a correction on a tracked frame
        painted = np.zeros((64, 96), bool)
        painted[38:56, 40:60] = True
        check(4, session.add_mask(4, b, painted), bare(p.add_new_mask(state, 4, b, painted)))
        bare_back = p.propagate_in_video(state, start_frame_idx=4, reverse=True)
        for event, out in zip(session.propagate("backward", start=4), bare_back, strict=True):
            check(event.frame_index, event.masks, bare(out))
        for frame in range(NUM_FRAMES):
            assert session.masks(frame)  # every frame was tracked
    finally:
        session.close()
        state.close()
