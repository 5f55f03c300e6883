"""The tracking step and SAM2VideoPredictor against the official per-object video predictor.

Both sides load the same random weights (the official model saved as an official checkpoint), run fp32 on
the CPU at image_size 256 with postprocessing off, and read the same synthetic JPEG clip. Every returned frame
must match: same frame order and object ids, masks with IoU >= 0.999 and logits within 1e-3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import build_sam2_video_predictor
from model.video.memory_bank import TensorVault
from tests.support.official_ref import build_official, save_official_checkpoint

pytestmark = pytest.mark.parity

IMAGE_SIZE = 256
NUM_FRAMES = 6
HEIGHT, WIDTH = 96, 128


def write_clip(folder: Path, num_frames: int = NUM_FRAMES) -> Path:
    """A disc moving right and a bar moving left over a gradient, as 00000.jpg, 00001.jpg, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for i in range(num_frames):
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[..., 0] = 40 + xx * 60 // WIDTH
        image[..., 1] = 60 + yy * 50 // HEIGHT
        image[..., 2] = 90
        image[(xx - (30 + 4 * i)) ** 2 + (yy - 40) ** 2 < 15**2] = (220, 40, 40)
        image[60:85, 70 - 3 * i : 110 - 3 * i] = (30, 200, 60)
        Image.fromarray(image).save(folder / f"{i:05d}.jpg", quality=95)
    return folder


class Pair:
    """The official predictor and ours on the same weights."""

    def __init__(
        self,
        config: str,
        folder: Path,
        score_bias: float = 0.0,
        apply_postprocessing: bool = False,
        official_overrides: tuple[str, ...] = (),
        **ours,
    ) -> None:
        self.official = build_official(
            config,
            image_size=IMAGE_SIZE,
            video=True,
            apply_postprocessing=apply_postprocessing,
            overrides=official_overrides,
        )
        with torch.no_grad():
            # These random weights score objects near 0; a bias keeps them clearly present (not -1024).
            self.official.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += score_bias
        checkpoint = save_official_checkpoint(self.official, folder / f"{config}.pt")
        self.ours = build_sam2_video_predictor(
            config,
            checkpoint,
            device="cpu",
            image_size=IMAGE_SIZE,
            apply_postprocessing=apply_postprocessing,
            **ours,
        )


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def pair21(tmp_path_factory) -> Pair:
    return Pair("sam2.1_hiera_tiny", tmp_path_factory.mktemp("ckpt21"))


@pytest.fixture(scope="module")
def pair20(tmp_path_factory) -> Pair:
    return Pair("sam2_hiera_tiny", tmp_path_factory.mktemp("ckpt20"), score_bias=0.2)


def run_both(pair: Pair, clip: Path, script) -> tuple[list, list]:
    """Run ``script(predictor, state) -> [(frame_idx, obj_ids, masks), ...]`` on both predictors."""
    results = []
    for predictor in (pair.official, pair.ours):
        state = predictor.init_state(str(clip))
        results.append(
            [(int(f), list(ids), masks.detach().clone()) for f, ids, masks in script(predictor, state)]
        )
    return results[0], results[1]


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def assert_same_frames(official: list, ours: list) -> float:
    """Same frames, ids, shapes, dtypes; mask IoU >= 0.999 and logits within 1e-3. Returns the max diff."""
    assert [(f, ids) for f, ids, _ in ours] == [(f, ids) for f, ids, _ in official]
    worst = 0.0
    for (frame_idx, _, ref), (_, _, got) in zip(official, ours):
        assert got.shape == ref.shape and got.dtype == ref.dtype == torch.float32
        assert got.device == ref.device
        for obj in range(ref.shape[0]):
            overlap = iou(got[obj] > 0, ref[obj] > 0)
            assert overlap >= 0.999, f"frame {frame_idx} object {obj}: IoU {overlap}"
        worst = max(worst, (got - ref).abs().max().item())
    assert worst <= 1e-3, f"largest logit difference {worst}"
    print(f"largest logit difference from the official: {worst:.3g}")
    return worst


def assert_some_object_present(results: list) -> None:
    # Random weights can judge every object absent (-1024 everywhere), which would test very little.
    assert any((masks > 0).any() for _, _, masks in results)


# ---------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("config", ["sam2.1_hiera_tiny", "sam2_hiera_tiny"])
def test_click_then_forward_propagation_matches_official(config, clip, request):
    pair = request.getfixturevalue("pair21" if config.startswith("sam2.1") else "pair20")

    def script(predictor, state):
        yield predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40]], labels=[1])
        yield from predictor.propagate_in_video(state)

    official, ours = run_both(pair, clip, script)
    assert [f for f, _, _ in ours] == [0, *range(NUM_FRAMES)]
    assert_some_object_present(official)
    assert_same_frames(official, ours)


def test_box_prompt_and_max_frames_match_official(pair21, clip):
    def script(predictor, state):
        yield predictor.add_new_points_or_box(state, 1, "bar", box=[68, 58, 108, 86])
        yield from predictor.propagate_in_video(state, max_frame_num_to_track=3)

    official, ours = run_both(pair21, clip, script)
    assert [f for f, _, _ in ours] == [1, 1, 2, 3, 4]
    assert_some_object_present(official)
    assert_same_frames(official, ours)


def test_two_objects_and_an_object_added_later_match_official(pair21, clip):
    def script(predictor, state):
        yield predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40]], labels=[1])
        yield predictor.add_new_points_or_box(
            state, 0, 2, points=[[90, 72], [30, 40]], labels=[1, 0], box=[68, 58, 110, 86]
        )
        yield from predictor.propagate_in_video(state)
        # A third object first prompted on a tracked frame; propagating from its frame keeps every object
        # supplied with a pointer (the official fp32 code fails otherwise, see the defect test below).
        yield predictor.add_new_points_or_box(state, 3, 7, points=[[60, 20]], labels=[1])
        yield from predictor.propagate_in_video(state, start_frame_idx=3)

    official, ours = run_both(pair21, clip, script)
    assert [ids for _, ids, _ in ours][-1] == [1, 2, 7]
    assert_some_object_present(official)
    assert_same_frames(official, ours)


def test_correction_click_and_repropagation_match_official(pair21, clip):
    def script(predictor, state):
        yield predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40]], labels=[1])
        yield from predictor.propagate_in_video(state)
        # A tracked frame: the click corrects it, using memory and the earlier logits.
        yield predictor.add_new_points_or_box(state, 3, 1, points=[[80, 72]], labels=[0])
        yield predictor.add_new_points_or_box(
            state, 3, 1, points=[[42, 40]], labels=[1], clear_old_points=False
        )
        yield from predictor.propagate_in_video(state, start_frame_idx=2)

    official, ours = run_both(pair21, clip, script)
    assert_some_object_present(official)
    assert_same_frames(official, ours)


def test_reverse_propagation_from_last_frame_matches_official(pair21, clip):
    last = NUM_FRAMES - 1

    def script(predictor, state):
        yield predictor.add_new_points_or_box(state, last, 1, points=[[50, 40]], labels=[1])
        yield from predictor.propagate_in_video(state, start_frame_idx=last, reverse=True)
        # A correction on a frame tracked in reverse is tracked in reverse too.
        yield predictor.add_new_points_or_box(state, 2, 1, points=[[38, 40], [100, 70]], labels=[1, 0])
        yield from predictor.propagate_in_video(state, start_frame_idx=3, reverse=True)

    official, ours = run_both(pair21, clip, script)
    assert [f for f, _, _ in ours][: NUM_FRAMES + 1] == [last, *range(last, -1, -1)]
    assert_some_object_present(official)
    assert_same_frames(official, ours)


def test_mask_prompt_matches_official(pair21, clip):
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    mask = (xx - 30) ** 2 + (yy - 40) ** 2 < 15**2

    def script(predictor, state):
        yield predictor.add_new_mask(state, 0, 5, mask)
        # An empty mask: the object is absent there (no-object pointer and memory embedding).
        yield predictor.add_new_mask(state, 0, 6, np.zeros_like(mask))
        yield from predictor.propagate_in_video(state, max_frame_num_to_track=2)

    official, ours = run_both(pair21, clip, script)
    assert_same_frames(official, ours)


def test_clear_remove_and_reset_match_official(pair21, clip):
    def script(predictor, state):
        yield predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40]], labels=[1])
        yield predictor.add_new_points_or_box(state, 0, 2, points=[[90, 72]], labels=[1])
        yield predictor.add_new_points_or_box(state, 1, 1, points=[[34, 40]], labels=[1])
        yield from predictor.propagate_in_video(state, max_frame_num_to_track=2)
        # Frame 1 stops being a conditioning frame of object 1; it keeps its output as a tracked one.
        yield predictor.clear_all_prompts_in_frame(state, 1, 1)
        yield from predictor.propagate_in_video(state, start_frame_idx=1, max_frame_num_to_track=1)
        ids, updated = predictor.remove_object(state, 2)
        for frame_idx, masks in updated:
            yield frame_idx, ids, masks
        yield from predictor.propagate_in_video(state, max_frame_num_to_track=1)
        predictor.reset_state(state)
        assert state["obj_ids"] == []
        yield predictor.add_new_points_or_box(state, 2, 3, points=[[40, 40]], labels=[1])

    official, ours = run_both(pair21, clip, script)
    assert_same_frames(official, ours)


def test_postprocessing_without_hole_filling_matches_official(clip, tmp_path):
    """Binarised memory masks on clicked frames and the dynamic multimask fallback; the official hole filling
    needs its CUDA extension and silently does nothing on the CPU, so ours is switched off here."""
    pair = Pair("sam2.1_hiera_tiny", tmp_path, apply_postprocessing=True, fill_hole_area=0)
    assert pair.ours.binarize_mask_from_pts_for_mem_enc
    assert pair.ours.model.sam_mask_decoder.dynamic_multimask_via_stability

    def script(predictor, state):
        yield predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40], [90, 72]], labels=[1, 0])
        yield from predictor.propagate_in_video(state, max_frame_num_to_track=3)

    official, ours = run_both(pair, clip, script)
    assert_same_frames(official, ours)


def test_corrections_kept_as_conditioning_frames_match_official(clip, tmp_path):
    """With add_all_frames_to_correct_as_cond a correction becomes a conditioning frame: earlier frames then
    read it as (future) spatial memory, but not its pointer."""
    pair = Pair(
        "sam2.1_hiera_tiny",
        tmp_path,
        official_overrides=("++model.add_all_frames_to_correct_as_cond=true",),
        add_all_frames_to_correct_as_cond=True,
    )
    assert pair.official.add_all_frames_to_correct_as_cond

    def script(predictor, state):
        yield predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40]], labels=[1])
        yield from predictor.propagate_in_video(state)
        yield predictor.add_new_points_or_box(state, 3, 1, points=[[42, 40], [80, 72]], labels=[1, 0])
        yield from predictor.propagate_in_video(state)

    official, ours = run_both(pair, clip, script)
    assert_some_object_present(official)
    assert_same_frames(official, ours)


# ---------------------------------------------------------------------------------------------- ours only


def test_object_prompted_later_tracks_earlier_frames_in_fp32(pair21, clip):
    """The official fp32 code fails here ("mat1 and mat2 must have the same dtype"): on frames before the
    object's first prompt its memory has no object pointer and stays bf16. Ours runs."""
    state = pair21.official.init_state(str(clip))
    pair21.official.add_new_points_or_box(state, 2, 1, points=[[38, 40]], labels=[1])
    with pytest.raises(RuntimeError, match="dtype"):
        list(pair21.official.propagate_in_video(state, start_frame_idx=0))

    predictor = pair21.ours
    state = predictor.init_state(str(clip))
    predictor.add_new_points_or_box(state, 2, 1, points=[[38, 40]], labels=[1])
    frames = list(predictor.propagate_in_video(state, start_frame_idx=0))
    assert [f for f, _, _ in frames] == list(range(NUM_FRAMES))
    for _, ids, masks in frames:
        assert ids == [1] and masks.shape == (1, 1, HEIGHT, WIDTH) and torch.isfinite(masks).all()


def test_object_prompted_later_matches_official_under_bf16_autocast(pair21, clip):
    """Where the official runs the defect case (bf16 autocast), ours agrees within bf16 noise."""

    def script(predictor, state):
        yield predictor.add_new_points_or_box(state, 2, 1, points=[[38, 40]], labels=[1])
        yield from predictor.propagate_in_video(state, start_frame_idx=0)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        official, ours = run_both(pair21, clip, script)
    assert [(f, ids) for f, ids, _ in ours] == [(f, ids) for f, ids, _ in official]
    assert_some_object_present(official)
    for (_, _, ref), (_, _, got) in zip(official, ours):
        assert got.dtype == ref.dtype == torch.float32
        assert iou(got > 0, ref > 0) >= 0.98


def test_stored_outputs_do_not_accumulate_across_passes(pair21, clip):
    predictor = pair21.ours
    state = predictor.init_state(str(clip))
    predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40]], labels=[1])
    for _ in range(2):
        list(predictor.propagate_in_video(state, max_frame_num_to_track=2))
        list(predictor.propagate_in_video(state, start_frame_idx=2, reverse=True))
    # One stored output per tracked frame (0, 1, 2): replaced outputs release their tensors.
    assert len(state.vault) == 3
    predictor.reset_state(state)
    assert len(state.vault) == 0


def test_spilling_the_state_to_disk_does_not_change_outputs(pair21, clip):
    predictor = pair21.ours

    def session():
        state = predictor.init_state(str(clip))
        predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40]], labels=[1])
        out = [m for _, _, m in predictor.propagate_in_video(state)]
        # Going back reads the memories of the first pass (spilled ones come back from disk).
        out += [m for _, _, m in predictor.propagate_in_video(state, start_frame_idx=4, reverse=True)]
        return state, out

    budget = predictor.state_ram_budget_mb
    try:
        predictor.state_ram_budget_mb = 0  # every stored output but the newest goes to disk
        spilled_state, spilled = session()
        assert spilled_state.vault.spilled > 0
        predictor.state_ram_budget_mb = None
        kept_state, kept = session()
        assert kept_state.vault.spilled == 0
    finally:
        predictor.state_ram_budget_mb = budget
    for a, b in zip(spilled, kept):
        assert torch.equal(a, b)
    spilled_state.close()


def test_tensor_vault_spills_least_recently_used_and_reloads_exactly(tmp_path):
    vault = TensorVault(ram_budget_bytes=3 * 4096, spill_dir=tmp_path)
    bundles = [{"x": torch.randn(1024), "y": torch.arange(3)} for _ in range(5)]
    keys = [vault.put(b) for b in bundles]
    assert vault.ram_bytes <= 3 * 4096 and vault.spilled == 3
    for key, bundle in zip(keys, bundles):
        loaded = vault.get(key)
        assert torch.equal(loaded["x"], bundle["x"]) and torch.equal(loaded["y"], bundle["y"])
    vault.discard(keys[0])
    assert len(vault) == 4
    vault.close()
    assert not any(tmp_path.iterdir())


def test_clear_non_cond_mem_around_input_runs(pair21, clip):
    """The official option raises AttributeError; ours drops the tracked memories near prompted frames."""
    predictor = pair21.ours
    predictor.clear_non_cond_mem_around_input = True
    try:
        state = predictor.init_state(str(clip))
        predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40]], labels=[1])
        list(predictor.propagate_in_video(state))
        predictor.add_new_points_or_box(state, 4, 1, points=[[46, 40]], labels=[1])
        frames = list(predictor.propagate_in_video(state, start_frame_idx=4, max_frame_num_to_track=1))
    finally:
        predictor.clear_non_cond_mem_around_input = False
    track = state.objects[0]
    # The correction on frame 4 dropped the tracked memories of frames 1-3 and 5 (frame 4 keeps its own);
    # the propagation then recomputed frames 4 and 5.
    assert sorted(track.cond) == [0] and sorted(track.non_cond) == [4, 5]
    assert [f for f, _, _ in frames] == [4, 5]


def test_inference_state_reads_like_the_official_dict(pair21, clip):
    predictor = pair21.ours
    state = predictor.init_state(str(clip))
    assert state["num_frames"] == NUM_FRAMES
    assert (state["video_height"], state["video_width"]) == (HEIGHT, WIDTH)
    assert state["obj_ids"] == []
    _, ids, masks = predictor.add_new_points(
        state, 0, "a", points=[[0.25, 0.4]], labels=[1], normalize_coords=False
    )
    assert ids == ["a"] and state["obj_id_to_idx"] == {"a": 0}
    assert masks.shape == (1, 1, HEIGHT, WIDTH) and masks.dtype == torch.float32
    with pytest.raises(KeyError):
        state["images"]
    # As in the official predictor, clearing prompts of an unknown id creates an object without prompts,
    # and propagation then asks for its prompts.
    assert predictor.clear_all_prompts_in_frame(state, 0, "b")[1] == ["a", "b"]
    with pytest.raises(RuntimeError, match="object id b"):
        list(predictor.propagate_in_video(state))


def test_bad_prompts_raise_and_leave_the_state_unchanged(pair21, clip):
    predictor = pair21.ours
    state = predictor.init_state(str(clip))
    predictor.add_new_points_or_box(state, 0, 1, points=[[30, 40]], labels=[1])
    with pytest.raises(IndexError, match="out of range"):
        predictor.add_new_points_or_box(state, NUM_FRAMES, 2, points=[[30, 40]], labels=[1])
    with pytest.raises(ValueError, match="one label each"):
        predictor.add_new_points_or_box(state, 0, 2, points=[[30, 40], [1, 2]], labels=[1])
    with pytest.raises(ValueError, match="2-D"):
        predictor.add_new_mask(state, 0, 2, np.zeros((2, 3, 4), bool))
    assert state["obj_ids"] == [1] and list(state.objects[0].points) == [0]


def test_from_pretrained_builds_the_predictor_from_the_hub_cache(hub_cache, pair21, tmp_path):
    from model import SAM2VideoPredictor
    from tests.support.hub_cache import populate_hub_cache

    checkpoint = save_official_checkpoint(pair21.official, tmp_path / "sam2.1_hiera_tiny.pt")
    populate_hub_cache(hub_cache, "facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt", checkpoint)
    predictor = SAM2VideoPredictor.from_pretrained(
        "facebook/sam2.1-hiera-tiny", device="cpu", image_size=IMAGE_SIZE, non_overlap_masks=True
    )
    assert isinstance(predictor, SAM2VideoPredictor) and predictor.non_overlap_masks
    assert predictor.fill_hole_area == 8 and predictor.image_size == IMAGE_SIZE
    assert predictor.device == torch.device("cpu")
    expected = pair21.ours.model.state_dict()
    for key, value in predictor.model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_non_overlap_matches_official_constraint(pair21):
    from model.video.non_overlap import apply_non_overlap

    logits = torch.randn(3, 1, 20, 24, generator=torch.Generator().manual_seed(0)) * 20
    expected = pair21.official._apply_non_overlapping_constraints(logits)
    assert torch.equal(apply_non_overlap(logits), expected)
    assert torch.equal(apply_non_overlap(logits[:1]), logits[:1])
