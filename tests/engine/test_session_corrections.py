"""Corrections that stick: a click on a tracked frame becomes a conditioning frame (the session's default), so
tracking again in any direction keeps the corrected mask and carries it on; with the official default the
session says when tracking replaced a correction. Stale frames are the frames the next run changes. Both
settings match the official predictor built with the same flag.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import build_sam2_video_predictor
from sam2_ui import Session, SessionError
from sam2_ui.interaction.interaction import Interaction
from tests.support.session_helpers import NUM_FRAMES, disc_centre, predictor

CORRECTED = 3  # the tracked frame the correction is given on


def tracked_then_corrected(session: Session) -> tuple[int, np.ndarray, np.ndarray]:
    """The disc prompted on frame 0 and tracked to the end, then a negative click on its centre on a tracked
    frame. Returns the object, frame CORRECTED's mask before and after the correction."""
    disc = session.add_object("disc")
    session.add_point(0, disc, *disc_centre(0))
    list(session.propagate("forward"))
    before = session.mask(CORRECTED, disc)
    session.add_point(CORRECTED, disc, *disc_centre(CORRECTED), False)
    after = session.mask(CORRECTED, disc)
    assert not np.array_equal(before, after), "the correction must change the mask, or nothing is tested"
    return disc, before, after


def masks_of(session: Session, obj: int) -> list[np.ndarray]:
    return [session.mask(f, obj) for f in range(session.num_frames)]


# --------------------------------------------------------------------------------- corrections that stick
def test_a_correction_is_kept_when_tracking_forward_again_from_the_first_prompt(frames):
    with Session.open(frames, predictor()) as s:
        disc, _, corrected = tracked_then_corrected(s)
        list(s.propagate("forward", start=0))
        assert np.array_equal(s.mask(CORRECTED, disc), corrected)
        assert s.prompted_frames(disc) == [0, CORRECTED]
        assert s.stale_frames() == [] and s.replaced_prompt_frames() == []


@pytest.mark.slow
def test_a_correction_is_kept_when_tracking_backward_over_it(frames):
    with Session.open(frames, predictor()) as s:
        disc, _, corrected = tracked_then_corrected(s)
        list(s.propagate("backward", start=NUM_FRAMES - 1))
        assert np.array_equal(s.mask(CORRECTED, disc), corrected)
        assert s.replaced_prompt_frames() == []


@pytest.mark.slow
def test_a_correction_is_kept_when_tracking_both_ways_from_the_corrected_frame(frames):
    with Session.open(frames, predictor()) as s:
        disc, _, corrected = tracked_then_corrected(s)
        events = list(s.propagate("both", start=CORRECTED))
        assert CORRECTED in [e.frame_index for e in events]
        assert np.array_equal(s.mask(CORRECTED, disc), corrected)
        assert s.stale_frames() == [] and s.replaced_prompt_frames() == []


@pytest.mark.slow
def test_the_corrected_frame_is_in_the_memory_of_every_frame_tracked_after_it(frames):
    """Carried on: the memory view shows the corrected frame as a conditioning frame of the frames after it
    (and, as spatial memory, of the frames before it)."""
    with Session.open(frames, predictor()) as s:
        disc, _, _ = tracked_then_corrected(s)
        list(s.propagate("forward", start=0))
        for frame in range(1, NUM_FRAMES):
            if frame != CORRECTED:
                assert s.memory_view(frame, disc).conditioning == (0, CORRECTED), frame
        assert CORRECTED in s.memory_view(NUM_FRAMES - 1, disc).pointers


@pytest.mark.slow
def test_the_session_chooses_the_setting_and_the_predictor_keeps_the_official_default(frames):
    shared = predictor()
    assert shared.add_all_frames_to_correct_as_cond is False
    with (
        Session.open(frames, shared) as sticky,
        Session.open(frames, shared, corrections_as_conditioning=False) as official,
    ):
        assert sticky.corrections_as_conditioning and not official.corrections_as_conditioning
        disc_a, _, corrected = tracked_then_corrected(sticky)
        disc_b, _, _ = tracked_then_corrected(official)
        list(official.propagate("forward", start=0))  # interleaved runs on one predictor
        list(sticky.propagate("forward", start=0))
        assert np.array_equal(sticky.mask(CORRECTED, disc_a), corrected)
        assert official.replaced_prompt_frames() == [CORRECTED]
    assert shared.add_all_frames_to_correct_as_cond is False


# ----------------------------------------------------------------------------- the official default, said
@pytest.mark.slow
def test_with_the_official_default_a_replaced_correction_is_said_not_hidden(frames):
    with Session.open(frames, predictor(), corrections_as_conditioning=False) as s:
        disc, before, corrected = tracked_then_corrected(s)
        list(s.propagate("forward", start=0))
        assert np.array_equal(s.mask(CORRECTED, disc), before)  # the official predictor's behaviour
        assert s.replaced_prompt_frames() == s.replaced_prompt_frames(disc) == [CORRECTED]
        ui = Interaction(s.predictor, display_size=(96, 64))
        ui.session = s  # the view of this session, as a front end shows it
        status = ui.view().status
        assert "replaced the corrections on frames 3" in status and "click there again" in status
        s.add_point(CORRECTED, disc, 30.0, 30.0, False)  # a new prompt there shows its mask again
        assert s.replaced_prompt_frames() == []


# ---------------------------------------------------------------------------------------- stale frames
@pytest.mark.slow
@pytest.mark.parametrize("as_cond", [True, False], ids=["corrections_as_conditioning", "official_default"])
def test_stale_frames_after_a_correction_cover_every_frame_the_next_run_changes(frames, as_cond):
    with Session.open(frames, predictor(), corrections_as_conditioning=as_cond) as s:
        disc, _, _ = tracked_then_corrected(s)
        stale = s.stale_frames(disc)
        assert stale == [f for f in range(1, NUM_FRAMES) if f != CORRECTED]
        before = masks_of(s, disc)
        list(s.propagate("both", start=0))
        after = masks_of(s, disc)
        changed = [f for f in range(NUM_FRAMES) if not np.array_equal(before[f], after[f])]
        assert changed, "the run after a correction changes some frames"
        shown_wrong = s.replaced_prompt_frames(disc)  # said in the status line, not as stale
        assert set(changed) <= set(stale) | set(shown_wrong)
        if as_cond:  # every stale frame reads the corrected frame as a conditioning frame: all of them change
            assert changed == stale
        assert s.stale_frames() == []
        assert shown_wrong == ([] if as_cond else [CORRECTED])


# --------------------------------------------------------------------------------------- session files
@pytest.mark.slow
@pytest.mark.parametrize("as_cond", [True, False])
def test_a_session_file_records_the_setting_and_loading_keeps_it(frames, tmp_path, as_cond):
    with Session.open(frames, predictor(), corrections_as_conditioning=as_cond) as s:
        tracked_then_corrected(s)
        path = s.save(tmp_path / "s.json")
        expected = [s.mask(f, 1) for f in range(NUM_FRAMES)]
    assert json.loads(path.read_text())["corrections_as_conditioning"] is as_cond
    with Session.load(path, predictor(), source=frames, replay=True) as loaded:
        assert loaded.corrections_as_conditioning is as_cond
        assert all(np.array_equal(loaded.mask(f, 1), m) for f, m in enumerate(expected))


@pytest.mark.slow
def test_a_session_file_without_the_setting_loads_as_made_before_it_and_a_forged_one_is_refused(
    frames, tmp_path
):
    with Session.open(frames, predictor(), corrections_as_conditioning=False) as s:
        tracked_then_corrected(s)
        path = s.save(tmp_path / "s.json")
    document = json.loads(path.read_text())
    del document["corrections_as_conditioning"]
    path.write_text(json.dumps(document))
    with Session.load(path, predictor(), source=frames) as loaded:
        assert loaded.corrections_as_conditioning is False
    with Session.load(path, predictor(), source=frames, corrections_as_conditioning=True) as chosen:
        assert chosen.corrections_as_conditioning is True
    document["corrections_as_conditioning"] = "yes"
    path.write_text(json.dumps(document))
    with pytest.raises(SessionError, match="corrections_as_conditioning must be true or false"):
        Session.load(path, predictor(), source=frames)


def test_a_predictor_that_cannot_choose_per_session_must_be_built_with_the_setting(frames):
    class OneSetting:
        """A predictor without per-state choice (as the official one)."""

        def __init__(self, inner, flag: bool):
            self._inner, self.add_all_frames_to_correct_as_cond = inner, flag

        def __getattr__(self, name):
            if name == "keep_corrections_as_conditioning":
                raise AttributeError(name)
            return getattr(self._inner, name)

    with pytest.raises(ValueError, match="build it with add_all_frames_to_correct_as_cond=True"):
        Session.open(frames, OneSetting(predictor(), False))
    with Session.open(frames, OneSetting(predictor(), True)) as s:
        assert s.corrections_as_conditioning


# --------------------------------------------------------------------------------- parity, both settings
def write_jpegs(frames: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg", quality=95)
    return folder


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.parity
@pytest.mark.parametrize("as_cond", [True, False], ids=["corrections_as_conditioning", "official_default"])
def test_corrected_sessions_match_the_official_predictor_built_with_the_same_flag(frames, tmp_path, as_cond):
    """The session (our predictor kept at the official default, the session choosing) against the official
    predictor built with ``add_all_frames_to_correct_as_cond`` = the session's setting, same calls."""
    from tests.support.official_ref import build_official, save_official_checkpoint

    official = build_official(
        "sam2.1_hiera_tiny",
        image_size=256,
        video=True,
        overrides=(f"++model.add_all_frames_to_correct_as_cond={str(as_cond).lower()}",),
    )
    with torch.no_grad():
        official.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 5.0
    assert official.add_all_frames_to_correct_as_cond is as_cond
    checkpoint = save_official_checkpoint(official, tmp_path / "tiny.pt")
    ours = build_sam2_video_predictor(
        "sam2.1_hiera_tiny", checkpoint, device="cpu", image_size=256, apply_postprocessing=False
    )
    folder = write_jpegs(frames, tmp_path / "jpg")
    state = official.init_state(str(folder))

    def theirs(out) -> dict[int, np.ndarray]:
        _, obj_ids, logits = out
        return {int(o): (logits[i, 0] > 0).cpu().numpy() for i, o in enumerate(obj_ids)}

    compared = 0
    with Session.open(folder, ours, corrections_as_conditioning=as_cond) as s:
        disc = s.add_object("disc")
        x, y = disc_centre(0)
        s.add_point(0, disc, x, y)
        official.add_new_points_or_box(state, 0, disc, [[x, y]], [1])
        first = zip(s.propagate("forward", start=0), official.propagate_in_video(state, start_frame_idx=0))
        for event, out in first:
            assert iou(event.masks[disc], theirs(out)[disc]) >= 0.999, event.frame_index
        x, y = disc_centre(CORRECTED)
        s.add_point(CORRECTED, disc, x, y, False)
        correction = theirs(official.add_new_points_or_box(state, CORRECTED, disc, [[x, y]], [0], False))
        assert iou(s.mask(CORRECTED, disc), correction[disc]) >= 0.999
        runs = [(s.propagate("forward", start=0), official.propagate_in_video(state, start_frame_idx=0))]
        if as_cond:
            # Backward from the correction: the official fp32 code cannot track backward from a frame with
            # no conditioning frame at or after it (its dtype defect), which is the case without the flag.
            runs.append(
                (
                    s.propagate("backward", start=CORRECTED),
                    official.propagate_in_video(state, start_frame_idx=CORRECTED, reverse=True),
                )
            )
        for ours_run, official_run in runs:
            for event, out in zip(ours_run, official_run, strict=True):
                assert event.frame_index == out[0]
                for obj, mask in theirs(out).items():
                    assert iou(event.masks[obj], mask) >= 0.999, (event.frame_index, obj)
                    compared += 1
        kept = iou(s.mask(CORRECTED, disc), correction[disc]) >= 0.999
        assert kept is as_cond  # the setting decides whether the correction survives, on both sides
    assert compared == NUM_FRAMES + (CORRECTED + 1 if as_cond else 0)
