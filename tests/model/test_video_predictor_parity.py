"""SAM2VideoPredictor against the official ``sam2==1.1.0`` one: every prompt kind, direction and option.

Both sides load the same random weights (the official model saved as an official checkpoint), run on the
CPU and read the same synthetic JPEG folder (``tests/video_clips.py``: a breathing disc, a block passing
behind a pole, a triangle entering on frame 2, on a textured background). ``tests/video_scenarios.py``
replays one list of API calls on each predictor and records every returned value; the two replays must
agree call by call: same return types, dtypes and shapes, same frame order and object ids, and per frame
and object mask IoU (``logits > 0``) >= 0.999 with logits within 1e-3 (absolute).

Cost control (the official model costs seconds per frame at 1024 on this CPU): scenarios run at
``image_size=256`` on both sides with 6- or 10-frame clips; one runs at the real 1024 configuration on a
3-frame clip. The scenarios that exercise what differs between the versions (object-pointer temporal
positions, forward and reverse; the no-object memory embedding; memory windows; corrections; the official
fp32 defect) run for SAM 2.1 and SAM 2 (tiny); so do those that exercise only the predictor's
bookkeeping (box, several objects, ``max_frame_num_to_track``, clearing, removing, resetting).
Postprocessing is off on both sides (nothing depends on the official CUDA extension), except in one
scenario that turns it on for both; see
``test_postprocessing_on_matches_official_with_hole_filling`` for how hole filling is compared there.

Weights: ``pred_obj_score_head``'s last bias is raised by ``SCORE_BIAS`` before saving, so that object scores
(around +0.02 for the SAM 2 random weights) sit well clear of the presence threshold 0, where float rounding
could flip a presence decision. Absent objects are still covered: an empty mask prompt makes one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from model import build_sam2_video_predictor
from tests.support.official_ref import build_official, save_official_checkpoint
from tests.support.video_clips import SyntheticClip, write_jpeg_clip
from tests.support.video_scenarios import (
    SCENARIOS,
    TIMINGS,
    AddMask,
    AddPoints,
    Comparison,
    FrameOutput,
    Propagate,
    StepResult,
    assert_non_vacuous,
    click,
    compare_runs,
    object_without_pointer_yet,
    real_size_two_objects,
    run_scenario,
)

pytestmark = pytest.mark.parity

CONFIGS = ["sam2.1_hiera_tiny", "sam2_hiera_tiny"]
BOOKKEEPING_CONFIGS = CONFIGS
SMALL_SIZE = 256
SCORE_BIAS = 0.5
MIN_IOU, LOGIT_ATOL = 0.999, 1e-3
BF16_MIN_IOU, BF16_LOGIT_ATOL = 0.98, 0.05
# Scenarios run on the 10-frame clip, long enough for the 6-frame memory window to drop old frames.
LONG_CLIP_SCENARIOS = {"click_first_frame_forward", "reverse_from_last_frame"}
MEASURED: dict[str, str] = {}


@dataclass(repr=False)
class Pair:
    """The official predictor and ours on the same weights, and the checkpoint they share."""

    config: str
    official: torch.nn.Module
    ours: object
    checkpoint: Path

    def __repr__(self) -> str:
        return f"Pair({self.config})"


@dataclass(repr=False)
class Clip:
    path: Path
    clip: SyntheticClip

    def __repr__(self) -> str:
        return f"Clip({self.clip.num_frames} frames, {self.path})"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Clip]:
    """short: 6 frames 192x144 (kite from frame 2, block hidden on frame 3); long: 10 frames; real: 3."""
    root = tmp_path_factory.mktemp("clips")
    specs = {"short": dict(num_frames=6), "long": dict(num_frames=10), "real": dict(num_frames=3)}
    return {name: Clip(*write_jpeg_clip(root / name, **kw)) for name, kw in specs.items()}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, tuple[torch.nn.Module, Path]]:
    """Per config: the official video model at 256 (seeded random weights, raised object score) and its
    checkpoint file."""
    root = tmp_path_factory.mktemp("checkpoints")
    out = {}
    for config in CONFIGS:
        official = build_official(config, image_size=SMALL_SIZE, video=True)
        with torch.no_grad():
            official.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += SCORE_BIAS
        out[config] = official, save_official_checkpoint(official, root / f"{config}.pt")
    return out


@pytest.fixture(scope="module")
def pairs(checkpoints) -> Callable[[str], Pair]:
    """``pairs(config)``: the official predictor and ours at 256, built once per config for the module."""
    cache: dict[str, Pair] = {}

    def get(config: str) -> Pair:
        if config not in cache:
            official, ckpt = checkpoints[config]
            ours = build_sam2_video_predictor(
                config, ckpt, device="cpu", image_size=SMALL_SIZE, apply_postprocessing=False
            )
            cache[config] = Pair(config, official, ours, ckpt)
        return cache[config]

    return get


def record(name: str, cmp: Comparison) -> None:
    MEASURED[name] = f"min IoU {cmp.min_iou:.6f}, max |logit diff| {cmp.max_logit_abs:.2e}, {cmp.masks} masks"


def check_scenario(pair: Pair, clip: Clip, name: str, steps, **tolerances) -> Comparison:
    """Replay ``steps`` on both predictors (fresh state each), compare, and check the test is not vacuous."""
    label = f"{name} [{pair.config}]"
    ref = run_scenario(pair.official, clip.path, steps)
    ours = run_scenario(pair.ours, clip.path, steps)
    cmp = compare_runs(ours, ref, label=label, **{"min_iou": MIN_IOU, "logit_atol": LOGIT_ATOL, **tolerances})
    assert_non_vacuous(cmp, label)
    record(label, cmp)
    return cmp


def run_named_scenario(pair: Pair, clips: dict[str, Clip], name: str) -> Comparison:
    clip = clips["long" if name in LONG_CLIP_SCENARIOS else "short"]
    return check_scenario(pair, clip, name, SCENARIOS[name](clip.clip))


# --------------------------------------------------------------------------------- the harness itself


def test_comparison_names_the_first_differing_step_frame_and_object():
    """The comparator is not vacuous: a logit moved by 1e-2, a swapped frame order and a changed dtype are
    each reported with their step, frame and object."""

    def replay(logit: float = 1.0, order=(0, 1), dtype=torch.float32) -> list[StepResult]:
        outs = []
        for t in order:
            masks = torch.full((2, 1, 4, 5), -1.0)
            masks[1, 0, 2, 3] = logit if t == 1 else 1.0
            outs.append(FrameOutput(t, (7, 3), masks))
        structure = f"iterator[Tensor[{dtype}, cpu, 2x1x4x5]]"
        return [StepResult(0, "propagate", structure, outs)]

    assert compare_runs(replay(), replay()).max_logit_abs == 0.0
    with pytest.raises(AssertionError, match=r"first:\nstep 0 \[propagate\], frame 1, obj 3: IoU 1.0.*0.01"):
        compare_runs(replay(logit=1.01), replay())
    with pytest.raises(AssertionError, match=r"first:\nstep 0 \[propagate\], frame 1, obj 3: IoU 0.000000"):
        compare_runs(replay(logit=-0.5), replay())
    with pytest.raises(AssertionError, match=r"\(frame, obj ids\) in order"):
        compare_runs(replay(order=(1, 0)), replay())
    with pytest.raises(AssertionError, match="bfloat16"):
        compare_runs(replay(dtype=torch.bfloat16), replay())


# ---------------------------------------------------------------- fp32 at 256, what differs by version


@pytest.mark.parametrize("config", CONFIGS)
def test_click_on_first_frame_propagated_forward_matches_official(pairs, clips, config):
    """One click on frame 0, tracked over 10 frames (the last frames drop the oldest memories)."""
    cmp = run_named_scenario(pairs(config), clips, "click_first_frame_forward")
    assert cmp.outputs == 1 + 10


@pytest.mark.parametrize("config", CONFIGS)
def test_mask_prompt_matches_official(pairs, clips, config):
    """A ground-truth mask prompt on frame 0, plus an object prompted with an empty mask (so absent on its
    conditioning frame: the no-object pointer and, for SAM 2.1, the no-object memory embedding), tracked."""
    clip = clips["short"]
    steps = SCENARIOS["mask_prompt"](clip.clip)
    empty = np.zeros((clip.clip.height, clip.clip.width), bool)
    steps = [steps[0], AddMask(0, 2, empty), *steps[1:]]
    check_scenario(pairs(config), clip, "mask_prompt", steps)


@pytest.mark.parametrize("config", CONFIGS)
def test_object_added_on_later_frame_after_first_propagation_matches_official(pairs, clips, config):
    """The kite is added on its first frame after the disc was tracked, then tracked forward and backward
    from there (a future conditioning frame, signed pointer positions)."""
    run_named_scenario(pairs(config), clips, "object_added_after_propagation")


@pytest.mark.parametrize("config", CONFIGS)
def test_correction_click_then_repropagation_matches_official(pairs, clips, config):
    """A correction on a tracked frame (memory plus previous logits as mask prompt, stored as
    non-conditioning), then tracking again, which recomputes the corrected frame."""
    run_named_scenario(pairs(config), clips, "correction_click")


@pytest.mark.parametrize("config", CONFIGS)
def test_reverse_propagation_from_last_frame_matches_official(pairs, clips, config):
    """A click on the last of 10 frames, tracked in reverse to frame 0."""
    cmp = run_named_scenario(pairs(config), clips, "reverse_from_last_frame")
    assert cmp.outputs == 1 + 10


# ------------------------------------------------------------------ fp32 at 256, the API bookkeeping


@pytest.mark.parametrize("config", BOOKKEEPING_CONFIGS)
def test_box_prompt_matches_official(pairs, clips, config):
    """A box alone, and a box with a click, on frame 0 (single-mask outputs), then tracking."""
    run_named_scenario(pairs(config), clips, "box_prompt")


@pytest.mark.parametrize("config", BOOKKEEPING_CONFIGS)
def test_two_objects_match_official(pairs, clips, config):
    """Ids 7 then 3 on frame 0 (returned in insertion order), a refinement click, forward tracking."""
    cmp = run_named_scenario(pairs(config), clips, "two_objects")
    assert cmp.masks >= 2 * 6


@pytest.mark.parametrize("config", BOOKKEEPING_CONFIGS)
def test_max_frame_num_to_track_matches_official(pairs, clips, config):
    """Forward 3, reverse 1 and forward 0 frames from a click on frame 2 (the ranges are inclusive)."""
    cmp = run_named_scenario(pairs(config), clips, "max_frames_to_track")
    assert cmp.outputs == 1 + 4 + 2 + 1


@pytest.mark.parametrize("config", BOOKKEEPING_CONFIGS)
def test_clear_all_prompts_in_frame_matches_official(pairs, clips, config):
    """Clearing an object's prompts on one frame downgrades it to a tracked frame; tracking again."""
    run_named_scenario(pairs(config), clips, "clear_prompts_in_frame")


@pytest.mark.parametrize("config", BOOKKEEPING_CONFIGS)
def test_remove_object_matches_official(pairs, clips, config):
    """Removing an object re-packs the others and returns the frames it was prompted on; unknown ids are
    a no-op; tracking again."""
    run_named_scenario(pairs(config), clips, "remove_object")


@pytest.mark.parametrize("config", BOOKKEEPING_CONFIGS)
def test_reset_state_matches_official(pairs, clips, config):
    """After ``reset_state`` the same state tracks a new object from a mask prompt."""
    run_named_scenario(pairs(config), clips, "reset_state")


# ------------------------------------------- an object with no pointer yet (official fp32 defect)


@pytest.mark.parametrize("config", CONFIGS)
def test_object_without_pointer_yet_runs_in_fp32_where_official_fails(pairs, clips, config):
    """Default propagation from frame 0 with an object first prompted on frame 2: on frames 0-1 that
    object's memory has no object pointer. The official code then concatenates only its bf16 memories and
    fails in the fp32 memory attention; ours must track every frame (the object is predicted on the frames
    before its first prompt too, from its future conditioning memory, as the official does under autocast).
    """
    pair, clip = pairs(config), clips["short"]
    steps = object_without_pointer_yet(clip.clip)
    with pytest.raises(RuntimeError, match="dtype"):
        run_scenario(pair.official, clip.path, steps)
    tracked = run_scenario(pair.ours, clip.path, steps)[-1].outputs
    n, h, w = clip.clip.num_frames, clip.clip.height, clip.clip.width
    assert [o.frame_idx for o in tracked] == list(range(n))
    assert all(o.obj_ids == (1, 3) for o in tracked)
    for o in tracked:
        assert o.logits.shape == (2, 1, h, w)
        assert torch.isfinite(o.logits).all()
    assert any((o.logits[1] > 0).any() for o in tracked[: clip.clip.appear_frame])


@pytest.mark.parametrize("config", CONFIGS)
def test_object_without_pointer_yet_matches_official_under_bf16_autocast(pairs, clips, config, tmp_path):
    """The same scenario with both sides under ``torch.autocast("cpu", dtype=torch.bfloat16)``, where the
    official runs: masks agree with IoU >= 0.98 and logits within 0.05.

    In bf16 the three candidate masks' predicted IoUs, nearly equal for random weights, round to equal or
    adjacent bf16 values, so the best-candidate choice on tracked frames flips on one-ulp differences (seen:
    ours picks candidate 2 where the official picks 1, both legitimately). These weights therefore raise
    candidate 1's IoU-head bias by 1 (predicted IoU about 0.75 against 0.54), which makes the choice decisive
    on both sides; candidate 1 also has the sharpest logits of the three for these weights, which keeps the
    IoU of the low-contrast random-weight masks well above 0.98 (measured 0.994 and 0.996)."""
    base = pairs(config)
    official = build_official(config, image_size=SMALL_SIZE, video=True)
    official.load_state_dict(base.official.state_dict())
    with torch.no_grad():
        official.sam_mask_decoder.iou_prediction_head.layers[-1].bias[1] += 1.0
    ckpt = save_official_checkpoint(official, tmp_path / f"{config}-decisive.pt")
    ours = build_sam2_video_predictor(
        config, ckpt, device="cpu", image_size=SMALL_SIZE, apply_postprocessing=False
    )
    clip = clips["short"]
    steps = object_without_pointer_yet(clip.clip)
    label = f"object_without_pointer_yet bf16 [{config}]"
    ref = run_scenario(official, clip.path, steps, autocast_dtype=torch.bfloat16)
    mine = run_scenario(ours, clip.path, steps, autocast_dtype=torch.bfloat16)
    cmp = compare_runs(mine, ref, min_iou=BF16_MIN_IOU, logit_atol=BF16_LOGIT_ATOL, label=label)
    assert_non_vacuous(cmp, label)
    record(label, cmp)


# ----------------------------------------------------------- postprocessing on, real size (SAM 2.1)


def scipy_connected_components(mask: torch.Tensor, calls: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for the official CUDA ``get_connected_components``: 8-connected labels and, per pixel, the
    area of its component (0 off the mask). mask: N, 1, H, W. Appends the number of components of area
    <= 8 found in each mask to ``calls``."""
    from scipy import ndimage

    masks = mask.to(torch.bool).cpu().numpy()
    labels = np.zeros(masks.shape, np.int32)
    areas = np.zeros(masks.shape, np.int32)
    for i in range(masks.shape[0]):
        lab, n = ndimage.label(masks[i, 0], structure=np.ones((3, 3), bool))
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        sizes[0] = 0
        labels[i, 0], areas[i, 0] = lab, sizes[lab]
        calls.append(int(((sizes[1:] > 0) & (sizes[1:] <= 8)).sum()))
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


def test_postprocessing_on_matches_official_with_hole_filling(checkpoints, clips, monkeypatch):
    """``apply_postprocessing=True`` on both sides (dynamic multimask fallback on single-mask prompts,
    binarised memory masks on clicked frames, 8-px hole filling), SAM 2.1 at 256.

    Decision: the official package has no compiled ``_C``, so its hole filling would silently do nothing
    while ours fills holes. Rather than switching hole filling off on both sides, the official
    ``get_connected_components`` is replaced in this test by an independent scipy labelling (8-connectivity,
    per-pixel component area, as the CUDA kernel's docstring specifies), so the official postprocessing runs
    in full and ours is compared against it; the test asserts that holes were actually found and filled."""
    import sam2.utils.misc

    config = CONFIGS[0]
    weights, ckpt = checkpoints[config]
    official = build_official(config, image_size=SMALL_SIZE, video=True, apply_postprocessing=True)
    official.load_state_dict(weights.state_dict())
    assert official.fill_hole_area == 8 and official.binarize_mask_from_pts_for_mem_enc
    ours = build_sam2_video_predictor(
        config, ckpt, device="cpu", image_size=SMALL_SIZE, apply_postprocessing=True
    )
    small_holes: list[int] = []
    monkeypatch.setattr(
        sam2.utils.misc, "get_connected_components", lambda m: scipy_connected_components(m, small_holes)
    )
    clip = clips["short"]
    c = clip.clip
    steps = [
        # Box plus click: a single-mask output, where the stability fallback applies.
        AddPoints(
            0,
            1,
            points=np.array([c.centre("disc", 0)], np.float32),
            labels=np.array([1], np.int32),
            box=c.box("disc", 0, margin=5),
        ),
        click(0, 2, (*c.centre("block", 0), 1), (*c.background_point(0), 0)),
        click(3, 1, (*c.centre("disc", 3), 1), (*c.background_point(3), 0)),
        Propagate(),
    ]
    check_scenario(Pair(config, official, ours, ckpt), clip, "postprocessing on", steps)
    assert sum(small_holes) > 0, "the official hole filling found no hole to fill: the test is vacuous"
    MEASURED["postprocessing on: holes <= 8 px filled by the official"] = str(sum(small_holes))


def test_real_1024_configuration_matches_official(checkpoints, clips):
    """SAM 2.1 tiny at the real 1024 input: a click and a box on frame 0, tracked over 3 frames."""
    config = CONFIGS[0]
    weights, ckpt = checkpoints[config]
    official = build_official(config, video=True)
    official.load_state_dict(weights.state_dict())
    assert official.image_size == 1024
    ours = build_sam2_video_predictor(config, ckpt, device="cpu", apply_postprocessing=False)
    clip = clips["real"]
    cmp = check_scenario(
        Pair(config, official, ours, ckpt), clip, "real 1024", real_size_two_objects(clip.clip)
    )
    assert cmp.outputs == 2 + 3


def test_report_largest_differences():
    # Printed with -s / -rA; the asserts above are the real checks.
    assert MEASURED, "no parity measurement ran"
    for name, value in MEASURED.items():
        print(f"{name}: {value}")
    for side in ("sam2.", "model."):
        runs = [t for t in TIMINGS if t[0].startswith(side)]
        cpu, wall = sum(t[1] for t in runs), sum(t[2] for t in runs)
        print(f"{side.rstrip('.')}: {len(runs)} replays, {cpu:.1f} s CPU, {wall:.1f} s wall")
