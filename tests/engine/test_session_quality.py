"""Mask quality: the predicted IoU and object score the model gives each mask, the doubtful-frame rule, and
the measured tracking speed with the estimates built on it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model import SAM2ImagePredictor
from sam2_ui import Session, SessionError
from sam2_ui.engine.masks import PROMPT, PROPAGATION, MaskEntry
from sam2_ui.engine.propagation import plan_legs
from sam2_ui.engine.quality import DoubtRule, doubt_reasons, doubtful_frames
from tests.support.session_helpers import (
    HEIGHT,
    NUM_FRAMES,
    WIDTH,
    block_box,
    disc_centre,
    predictor,
)


@pytest.fixture
def state(frames):
    """The bare predictor's state with the disc clicked and the block boxed on frame 2."""
    p = predictor()
    state = p.init_state(frames)
    p.add_new_points_or_box(state, 2, 1, [disc_centre(2)], [1])
    p.add_new_points_or_box(state, 2, 2, box=block_box(2))
    yield state
    state.close()


# ------------------------------------------------------------------------------------------------ predictor
def test_prompt_scores_are_the_image_predictors_best_candidate_iou(frames, state):
    scores = predictor().frame_scores(state, 2)
    image = SAM2ImagePredictor(predictor().model)
    image.set_image(frames[2])
    _, click_ious, _ = image.predict(np.array([disc_centre(2)]), np.array([1]), multimask_output=True)
    _, box_ious, _ = image.predict(box=np.array(block_box(2)), multimask_output=False)
    # A single click asks for 3 candidates: the one kept is the best rated (the preprocessing of the two
    # paths differs by float rounding, hence the tolerance).
    assert scores[1][0] == pytest.approx(float(click_ious.max()), abs=1e-4)
    assert abs(scores[1][0] - float(np.sort(click_ious)[-2])) > 1e-3  # the tolerance tells them apart
    assert scores[2][0] == pytest.approx(float(box_ious[0]), abs=1e-4)
    assert all(score > 0 for _, score in scores.values())  # both objects judged present


@pytest.mark.slow
def test_frame_scores_cover_every_tracked_frame_and_equal_the_stored_outputs(state):
    p = predictor()
    assert p.frame_scores(state, 0) == {}  # nothing computed there yet
    for frame_idx, _, _ in p.propagate_in_video(state):
        scores = p.frame_scores(state, frame_idx)
        assert sorted(scores) == [1, 2]
        for track in state.objects:
            out = track.cond.get(frame_idx) or track.non_cond[frame_idx]
            iou, score = scores[track.obj_id]
            assert 0.0 <= iou <= 1.0
            assert (iou, score) == (out.iou.item(), out.object_score_logits.item())
    assert p.frame_scores(state, 1) == {}  # tracking went forward from frame 2


def test_a_mask_prompt_scores_iou_one_and_a_present_object(state):
    p = predictor()
    painted = np.zeros((HEIGHT, WIDTH), bool)
    painted[38:56, 40:60] = True
    p.add_new_mask(state, 4, 2, painted)
    assert p.frame_scores(state, 4) == {2: (1.0, 10.0)}


@pytest.mark.slow
def test_a_correction_replaces_the_scores_of_the_tracked_output(state):
    p = predictor()
    for _ in p.propagate_in_video(state):
        pass
    before = p.frame_scores(state, 4)
    p.add_new_points_or_box(state, 4, 1, [[40, 40]], [0], clear_old_points=False)
    after = p.frame_scores(state, 4)
    assert after[2] == before[2]
    newest = state.objects[0].newest_output(4)  # the pending correction
    assert after[1] != before[1]
    assert after[1] == (newest.iou.item(), newest.object_score_logits.item())


# ------------------------------------------------------------------------------------------------ engine
@pytest.mark.slow
def test_the_session_keeps_the_predictors_scores_and_each_masks_area(frames, session, state):
    p = predictor()
    for _ in p.propagate_in_video(state):
        pass
    for _ in session.propagate("forward"):
        pass
    for frame in range(NUM_FRAMES):
        quality = session.mask_quality(frame)
        masks = session.masks(frame)
        assert sorted(quality) == sorted(masks)
        scores = p.frame_scores(state, frame)
        for obj, (iou, score, area) in quality.items():
            assert (iou, score) == scores[obj]
            assert area == int(masks[obj].sum())


def test_masks_from_a_predictor_without_frame_scores_have_no_scores(frames):
    class WithoutScores:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            if name == "frame_scores":
                raise AttributeError(name)
            return getattr(self._inner, name)

    with Session.open(frames, WithoutScores(predictor())) as s:
        a = s.add_object()
        s.add_point(2, a, *disc_centre(2))
        for _ in s.propagate("forward", end=3):
            pass
        for frame in (2, 3):
            iou, score, area = s.mask_quality(frame)[a]
            assert (iou, score) == (None, None)
            assert area == int(s.mask(frame, a).sum()) > 0


@pytest.mark.slow
def test_scores_survive_save_and_load(frames, session, tmp_path):
    for _ in session.propagate("both"):
        pass
    path = session.save(tmp_path / "session.json")
    with Session.load(path, predictor(), source=frames) as loaded:
        for frame in range(NUM_FRAMES):
            assert loaded.mask_quality(frame) == session.mask_quality(frame)
            assert all(iou is not None for iou, _, _ in loaded.mask_quality(frame).values())


@pytest.mark.slow
def test_a_session_file_without_scores_still_loads(frames, session, tmp_path):
    for _ in session.propagate("forward"):
        pass
    path = session.save(tmp_path / "session.json")
    document = json.loads(path.read_text())
    for record in document["masks"]:
        del record["iou"], record["score"]
    path.write_text(json.dumps(document))
    with Session.load(path, predictor(), source=frames) as loaded:
        for frame in range(NUM_FRAMES):
            saved = session.mask_quality(frame)
            assert loaded.mask_quality(frame) == {
                obj: (None, None, area) for obj, (_, _, area) in saved.items()
            }


@pytest.mark.slow
def test_the_session_flags_frames_by_its_doubt_rule_but_never_prompted_ones(session):
    for _ in session.propagate("both"):
        pass
    session.doubt_rule = DoubtRule(min_iou=0.0, min_score=0.0, max_area_ratio=float("inf"))
    assert session.doubtful_frames() == []
    # Predicted IoUs are at most 1: every mask is doubtful, except on the prompted frame.
    session.doubt_rule = DoubtRule(min_iou=1.01, min_score=0.0, max_area_ratio=float("inf"))
    assert session.doubtful_frames() == [0, 1, 3, 4, 5]
    assert session.doubtful_frames(1) == [0, 1, 3, 4, 5]
    # Block clicked on frame 4 too: that frame is not doubtful for the block, still is for the disc.
    session.add_point(4, 2, *block_box(4)[:2])
    assert session.doubtful_frames(2) == [0, 1, 3, 5]
    assert session.doubtful_frames() == [0, 1, 3, 4, 5]
    with pytest.raises(SessionError):
        session.doubtful_frames(7)


# ------------------------------------------------------------------------------------------------ the rule
def _entry(
    area: int, iou: float | None = 0.9, score: float | None = 5.0, origin: str = PROPAGATION
) -> MaskEntry:
    mask = np.zeros(40 * 40, bool)
    mask[:area] = True
    return MaskEntry.from_mask(mask.reshape(40, 40), origin, 0, iou, score)


def test_a_mask_entry_counts_its_area():
    assert _entry(123).area == 123
    assert _entry(0).area == 0 and _entry(0).packed is None  # an empty mask stores no pixels


def test_a_poorly_rated_mask_is_doubtful():
    entries = {0: _entry(100), 1: _entry(100, iou=0.49), 2: _entry(100, iou=0.5), 3: _entry(100, iou=None)}
    assert doubtful_frames(entries, set()) == [1]
    # The IoU of an empty mask is not judged (the model emptied it because the object is gone).
    assert doubtful_frames({0: _entry(0), 1: _entry(0, iou=0.1, score=-8.0)}, set()) == []


def test_an_object_score_near_zero_is_doubtful():
    entries = {
        0: _entry(100, score=5.0),
        1: _entry(100, score=0.99),
        2: _entry(100, score=-0.5),
        3: _entry(100, score=1.0),
        4: _entry(100, score=None),
    }
    assert doubtful_frames(entries, set()) == [1, 2]
    assert doubtful_frames({0: _entry(0, score=-1.0), 1: _entry(0, score=-0.2)}, set()) == [1]


def test_a_sudden_change_in_area_is_doubtful():
    # 100 -> 300 is a factor 3 > 2.5; 300 -> 120 exactly 2.5 is not; 120 -> 400 across a gap in the frames.
    entries = {0: _entry(100), 1: _entry(300), 2: _entry(120), 5: _entry(400)}
    assert doubtful_frames(entries, set()) == [1, 5]
    assert doubt_reasons(entries, set())[5] == "the mask changed size suddenly (120 -> 400 pixels)"


def test_a_mask_appearing_or_vanishing_is_doubtful_unless_tiny():
    entries = {0: _entry(100), 1: _entry(0, score=-5.0), 2: _entry(0, score=-5.0), 3: _entry(80)}
    assert doubtful_frames(entries, set()) == [1, 3]
    specks = {0: _entry(10), 1: _entry(0, score=-5.0), 2: _entry(63), 3: _entry(0, score=-5.0)}
    assert doubtful_frames(specks, set()) == []


def test_prompted_frames_are_never_doubtful_but_anchor_the_area_rule():
    entries = {0: _entry(100, iou=0.1, score=0.2), 1: _entry(1000, origin=PROMPT), 2: _entry(1000)}
    assert doubtful_frames(entries, {0, 1}) == []
    assert doubtful_frames(entries, set()) == [0, 1]
    assert doubtful_frames(entries, {1}) == [0]


def test_the_rule_thresholds_are_configurable():
    entries = {0: _entry(100, iou=0.7), 1: _entry(150, iou=0.9, score=1.5)}
    assert doubtful_frames(entries, set()) == []
    assert doubtful_frames(entries, set(), DoubtRule(min_iou=0.8)) == [0]
    assert doubtful_frames(entries, set(), DoubtRule(min_score=2.0)) == [1]
    assert doubtful_frames(entries, set(), DoubtRule(max_area_ratio=1.2)) == [1]
    assert doubtful_frames(entries, set(), DoubtRule(max_area_ratio=1.2, min_area=151)) == []


# ------------------------------------------------------------------------------------------------ speed
@pytest.mark.slow
def test_seconds_per_frame_is_unknown_before_tracking_and_measured_after(session):
    assert session.seconds_per_frame is None
    assert session.estimate_seconds("forward") == (4, None)
    events = list(session.propagate("forward"))
    per_frame = session.seconds_per_frame
    assert per_frame is not None and 0 < per_frame <= events[-1].elapsed_s / len(events) + 1e-6
    count, seconds = session.estimate_seconds("both")
    assert count == 7 and seconds == pytest.approx(7 * per_frame)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("direction", "start", "end"),
    [
        ("forward", None, None),
        ("forward", 3, 4),
        ("backward", None, None),
        ("backward", 4, 1),
        ("both", None, None),
        ("both", 2, (1, 3)),
        ("backward", 0, None),
    ],
)
def test_estimates_count_the_frames_a_run_visits(session, direction, start, end):
    count, _ = session.estimate_seconds(direction, start, end)
    _, legs = plan_legs(direction, start, end, NUM_FRAMES, session.prompted_frames())
    assert count == sum(leg.count for leg in legs)
    assert count == len(list(session.propagate(direction, start, end)))


def test_an_estimate_needs_prompts_as_tracking_does(frames):
    with Session.open(frames, predictor()) as s:
        s.add_object()
        with pytest.raises(SessionError, match="Nothing to track"):
            s.estimate_seconds("forward")
