"""Model calls in forked workers, as on a ZeroGPU Space (`ForkedGPU` keeps ``spaces.GPU``'s contract here).

Every worker mode must give what the in-process session gives: the same masks, prompts, log and history,
after tracking, undo, redo, corrections, Stop, a run cut into calls, and a worker killed during a run.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch

from sam2_ui import Session, SessionError
from sam2_ui.engine.forked_gpu import ForkedGPU
from sam2_ui.engine.gpu_budget import ZERO_GPU_MAX_SECONDS, GpuBudget, replay_frames
from sam2_ui.engine.model_calls import ModelCall
from sam2_ui.engine.model_worker import serve
from sam2_ui.engine.prompts import AddPoint, Leg, Propagate, log_version
from sam2_ui.engine.propagation import split_legs
from sam2_ui.engine.worker_executor import WorkerExecutors
from tests.support.session_helpers import (
    all_masks,
    assert_same_masks,
    block_box,
    disc_centre,
    make_frames,
    predictor,
    state_of,
    write_mp4,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_mp4(make_frames(), tmp_path_factory.mktemp("clip") / "clip.mp4", 10)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return write_mp4(make_frames(12), tmp_path_factory.mktemp("long") / "long.mp4", 10)


class Recording:
    """A launcher that records every call and reply it passes between the session and ``gpu``."""

    def __init__(self, gpu: ForkedGPU):
        self.gpu = gpu
        self.launch = gpu(serve)
        self.calls: list[ModelCall] = []
        self.replies: list = []

    def __call__(self, call: ModelCall):
        self.calls.append(call)
        for reply in self.launch(call):
            self.replies.append(reply)
            yield reply


@pytest.fixture
def workers():
    made: list[ForkedGPU] = []

    def make(mode: str, budget: GpuBudget | None = None):
        gpu = ForkedGPU(mode, seed=len(made))
        made.append(gpu)
        launcher = Recording(gpu)
        return launcher, WorkerExecutors(launcher, predictor(), budget)

    yield make
    for gpu in made:
        gpu.shutdown()


def scenario(session: Session) -> None:
    """Prompts, tracking, undo and redo, a correction, tracking both ways, segment everything's objects."""
    ball, box = session.add_object("ball"), session.add_object("box")
    session.add_point(0, ball, *disc_centre(0))
    session.add_box(0, box, *block_box(0))
    session.add_point(0, ball, 60.0, 20.0, True)
    session.remove_point(0, ball, 1)
    list(session.propagate("forward", start=0))
    session.add_point(3, ball, *disc_centre(3), False)
    session.undo()
    session.redo()
    session.add_point(2, box, *block_box(2)[:2])
    list(session.propagate("both", start=2))
    session.clear(frame=2, obj=box)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fresh", "reuse", "random"])
def test_every_worker_mode_gives_what_the_in_process_session_gives(clip, workers, mode):
    with Session.open(clip, predictor()) as direct:
        scenario(direct)
        expected = state_of(direct)
    launcher, factory = workers(mode)
    with Session.open(clip, predictor(), executor=factory) as remote:
        scenario(remote)
        assert state_of(remote) == expected
        assert len(expected["masks"]) == 11  # 6 frames x 2 objects but the cleared one, each compared
        stats = remote._executor.stats
    if mode == "fresh":
        assert launcher.gpu.forks == launcher.gpu.calls == stats.calls
    if mode == "reuse":
        assert launcher.gpu.forks == 1
        assert stats.misses == 0  # undo, then redo, comes back to the very log the worker holds


@pytest.mark.slow
def test_a_worker_tracks_with_the_session_s_choice_of_corrections_as_conditioning(clip, workers):
    expected = {}
    for as_cond in (True, False):
        with Session.open(clip, predictor(), corrections_as_conditioning=as_cond) as direct:
            scenario(direct)
            expected[as_cond] = state_of(direct)
        launcher, factory = workers("reuse")
        with Session.open(clip, predictor(), executor=factory, corrections_as_conditioning=as_cond) as remote:
            scenario(remote)
            assert state_of(remote) == expected[as_cond]
        assert {call.corrections_as_conditioning for call in launcher.calls} == {as_cond}
    assert expected[True]["masks"] != expected[False]["masks"]  # the scenario's correction tells them apart


@pytest.mark.slow
def test_a_reused_worker_builds_on_the_state_it_kept(clip, workers):
    launcher, factory = workers("reuse")
    with Session.open(clip, predictor(), executor=factory) as session:
        ball = session.add_object()
        session.add_point(0, ball, *disc_centre(0))
        list(session.propagate("forward", start=0))
        session.add_point(4, ball, *disc_centre(4))
        assert session._executor.stats.replayed == 0
        session.undo()
        session.add_point(4, ball, *disc_centre(4), False)  # after an undo: the worker replays the log
        assert session._executor.stats.replayed == 2
    assert [call.version for call in launcher.calls[:3]] == [
        "",
        log_version([AddPoint(0, 1, *disc_centre(0), True)]),
        launcher.calls[2].version,
    ]


@pytest.mark.slow
def test_segment_everything_leaves_the_worker_s_kept_state_alone(clip, workers):
    launcher, factory = workers("reuse")
    with Session.open(clip, predictor(), executor=factory) as session:
        ball = session.add_object()
        session.add_point(0, ball, *disc_centre(0))
        list(session.propagate("forward", start=0))
        session.segment_everything(0, points_per_side=4)
        session.add_point(2, ball, *disc_centre(2), False)
        assert session._executor.stats.replayed == 0
    assert "segment" in [call.kind for call in launcher.calls]


@pytest.mark.slow
def test_no_tensor_crosses_between_session_and_worker(clip, workers):
    launcher, factory = workers("fresh")
    with Session.open(clip, predictor(), executor=factory) as session:
        ball = session.add_object()
        session.add_point(0, ball, *disc_centre(0))
        list(session.propagate("forward", start=0))
        found = session.segment_everything(0, points_per_side=4)
    crossed: list[type] = []

    class Watch(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, torch.Tensor):
                crossed.append(type(obj))
            return NotImplemented

    for item in launcher.calls + launcher.replies:
        Watch(io.BytesIO()).dump(item)
    kinds = [call.kind for call in launcher.calls]
    assert kinds == ["run", "track", "segment"] + (["run"] if found else [])
    assert len(launcher.replies) > 6
    assert crossed == []


@pytest.mark.slow
def test_stop_ends_a_worker_run_within_a_frame_and_the_worker_keeps_what_the_session_recorded(
    long_clip, workers
):
    launcher, factory = workers("reuse")
    with Session.open(long_clip, predictor(), executor=factory) as session:
        ball = session.add_object()
        session.add_point(0, ball, *disc_centre(0))
        done = 0
        for progress in session.propagate("forward", start=0):
            done = progress.done
            if done == 3:
                session.cancel()
        assert 3 <= done <= 4  # the frame under way when Stop came, at most
        assert session.last_propagation.cancelled
        assert session.prompt_log[-1] == Propagate((Leg(0, done, False),))
        session.add_point(1, ball, *disc_centre(1), False)
        assert session._executor.stats.replayed == 0  # the worker held exactly the recorded run
        got = all_masks(session)
    with Session.open(long_clip, predictor()) as direct:
        direct.add_point(0, direct.add_object(), *disc_centre(0))
        list(direct.propagate("forward", start=0, end=done - 1))
        direct.add_point(1, 1, *disc_centre(1), False)
        assert_same_masks(got, all_masks(direct))


@pytest.mark.slow
def test_a_killed_worker_gives_a_message_and_loses_no_stored_mask(long_clip, workers):
    launcher, factory = workers("reuse")
    with Session.open(long_clip, predictor(), executor=factory) as session:
        ball = session.add_object()
        session.add_point(0, ball, *disc_centre(0))
        launcher.gpu.kill_during_next_call(after_values=4)
        seen = []
        with pytest.raises(SessionError, match="GPU worker stopped.*kept"):
            for progress in session.propagate("forward", start=0):
                seen.append(progress.frame_index)
        assert seen == [0, 1, 2, 3]
        assert session.tracked_frames() == seen
        kept = all_masks(session)
        list(session.propagate("forward", start=0))  # a fresh worker replays the log and goes on
        assert session.tracked_frames() == list(range(12))
        got = all_masks(session)
    with Session.open(long_clip, predictor()) as direct:
        direct.add_point(0, direct.add_object(), *disc_centre(0))
        list(direct.propagate("forward", start=0, end=3))
        assert_same_masks(kept, all_masks(direct))
        list(direct.propagate("forward", start=0))
        assert_same_masks(got, all_masks(direct))


@pytest.mark.slow
def test_a_run_longer_than_one_call_allows_is_cut_into_calls_that_go_on_where_the_last_stopped(
    long_clip, workers
):
    budget = GpuBudget(max_seconds=12, base_seconds=10, seconds_per_frame=0.25, margin=2.0)  # 4 frames
    assert budget.frames_per_call(None) == 4
    launcher, factory = workers("fresh", budget)
    with Session.open(long_clip, predictor(), executor=factory) as session:
        ball = session.add_object()
        session.add_point(5, ball, *disc_centre(5))
        progress = list(session.propagate("both", start=5))
        assert [p.done for p in progress] == list(range(1, 14))  # one run for the user
        assert all(call.gpu_seconds <= 12 for call in launcher.calls)
        tracks = [call.legs for call in launcher.calls if call.kind == "track"]
        assert tracks == [
            (Leg(5, 4, False),),
            (Leg(9, 3, False), Leg(5, 1, True)),
            (Leg(4, 5, True),),  # one frame over rather than a call tracking backward from frame 0
        ]
        got = all_masks(session)
        session.undo()  # the whole run is one step
        assert session.tracked_frames() == [5]
    with Session.open(long_clip, predictor()) as direct:
        direct.add_point(5, direct.add_object(), *disc_centre(5))
        list(direct.propagate("both", start=5))
        assert_same_masks(got, all_masks(direct))


@pytest.mark.slow
def test_each_call_asks_for_the_frames_it_touches_at_the_measured_rate_capped(clip, workers):
    budget = GpuBudget(max_seconds=60, base_seconds=5, seconds_per_frame=1.0, margin=2.0)
    launcher, factory = workers("reuse", budget)
    with Session.open(clip, predictor(), executor=factory) as session:
        ball = session.add_object()
        session.add_point(0, ball, *disc_centre(0))
        list(session.propagate("forward", start=0))
        measured = session._executor.seconds_per_frame
        session.add_point(2, ball, *disc_centre(2))
    click, track, correction = launcher.calls
    assert click.gpu_seconds == 5 + 2  # one frame at the guessed 1 s, times the margin
    assert track.gpu_seconds == 5 + 2 * (6 + 1)  # six frames and a replay of the click
    assert measured is not None and measured < 1.0
    assert correction.gpu_seconds == int(np.ceil(5 + 2 * measured * (1 + replay_frames(correction.log))))
    assert budget.seconds(10_000, None) == 60
    with pytest.raises(ValueError):
        GpuBudget(max_seconds=ZERO_GPU_MAX_SECONDS + 1)


def test_split_legs_cuts_each_leg_where_the_budget_ends():
    legs = (Leg(2, 5, False), Leg(2, 3, True))
    assert split_legs(legs, None) == [legs]
    assert split_legs(legs, 3) == [
        (Leg(2, 3, False),),
        (Leg(5, 2, False), Leg(2, 1, True)),
        (Leg(1, 2, True),),
    ]
    assert split_legs((Leg(0, 0, True),), 2) == []
    assert split_legs((Leg(3, 4, True),), 3) == [(Leg(3, 4, True),)]


def test_a_log_has_the_same_version_after_pickling():
    from sam2_ui.engine.prompts import SetMask, read_only

    log = [
        AddPoint(0, 1, 3.0, 4.0, True),
        SetMask(1, 2, read_only(np.eye(5, dtype=bool))),
        Propagate((Leg(0, 3, False),)),
    ]
    copy = pickle.loads(pickle.dumps(log))
    assert log_version(copy) == log_version(log) != log_version(log[:2]) != ""
    other = [*log[:1], SetMask(1, 2, read_only(~np.eye(5, dtype=bool))), log[2]]
    assert log_version(other) != log_version(log)
