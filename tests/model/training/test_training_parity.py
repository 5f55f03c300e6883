"""Training equals the official trainer: the losses, one training step's loss and gradients, and the mix of
simulated prompts (random weights, CPU, fp32)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.training.batch import Clip, collate
from model.training.clip_forward import FrameSteps, forward_clips
from model.training.losses import clip_losses
from model.training.prompts import PromptPlan, PromptSettings, error_clicks, noisy_box, plan_prompts
from tests.model.training.official_training import (
    official_input,
    official_loss,
    set_official_prompts,
    twin_models,
)

pytestmark = pytest.mark.parity

SIZE = 128  # the network input side: small enough for a CPU, the same code path as 1024


def _random_steps(num_frames: int, num_objects: int, seed: int) -> tuple[list[FrameSteps], torch.Tensor]:
    """Made-up outputs of several prompting steps (3 candidates and 1) and targets, some objects absent."""
    gen = torch.Generator().manual_seed(seed)
    frames = []
    for _ in range(num_frames):
        steps = FrameSteps()
        for candidates in (3, 1, 1, 3):
            steps.multimasks.append(torch.randn(num_objects, candidates, 32, 32, generator=gen) * 4)
            steps.ious.append(torch.rand(num_objects, candidates, generator=gen))
            steps.object_scores.append(torch.randn(num_objects, 1, generator=gen) * 3)
        frames.append(steps)
    targets = torch.rand(num_frames, num_objects, 32, 32, generator=gen) > 0.6
    targets[1, 0] = False  # an object that vanishes on a frame
    return frames, targets


def test_loss_equals_official_multistep_multimask_loss():
    frames, targets = _random_steps(num_frames=3, num_objects=4, seed=1)
    ours = clip_losses(frames, targets, num_objects=4.0)
    outputs = [
        {
            "multistep_pred_multimasks_high_res": f.multimasks,
            "multistep_pred_ious": f.ious,
            "multistep_object_score_logits": f.object_scores,
        }
        for f in frames
    ]
    official = official_loss()(outputs, targets)
    pairs = {"mask": "loss_mask", "dice": "loss_dice", "iou": "loss_iou", "object_score": "loss_class"}
    pairs["total"] = "core_loss"
    for name, official_name in pairs.items():
        ref = float(official[official_name])
        assert abs(float(ours[name]) - ref) <= 1e-6 * max(1.0, abs(ref)), (name, float(ours[name]), ref)


def _clips(seed: int, num_frames: int = 3) -> list[Clip]:
    """Two clips of moving rectangles on noise (2 and 1 objects; one object leaves the second clip)."""
    rng = np.random.default_rng(seed)
    clips = []
    for objects in (2, 1):
        frames = rng.integers(0, 256, (num_frames, SIZE, SIZE, 3), dtype=np.uint8)
        masks = np.zeros((num_frames, objects, SIZE, SIZE), dtype=bool)
        for t in range(num_frames):
            for k in range(objects):
                x, y = 10 + 30 * k + 6 * t, 20 + 25 * k + 4 * t
                masks[t, k, y : y + 40, x : x + 30] = True
                frames[t, y : y + 40, x : x + 30] = (60 + 80 * k, 200, 40 * t)
        if objects == 1:
            masks[-1] = False
        clips.append(Clip(frames, masks, tuple(range(1, objects + 1))))
    return clips


def _click_plan(batch) -> PromptPlan:
    """Initial frames 0 (a box) and 2 (a click), corrections on 0, 2 and 1."""
    gen = torch.Generator().manual_seed(7)
    plan = PromptPlan(init_frames=[0, 2], corrected_frames=[0, 2, 1])
    plan.clicks[0], plan.kinds[0] = noisy_box(batch.masks[0][:, None], gen), "box"
    plan.clicks[2], plan.kinds[2] = error_clicks(batch.masks[2][:, None], None, gen), "click"
    return plan


def _mask_plan(batch) -> PromptPlan:
    return PromptPlan(init_frames=[0, 1], corrected_frames=[], kinds={0: "mask", 1: "mask"})


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    denominator = a.norm() * b.norm()
    if denominator == 0:
        return 1.0 if torch.equal(a, b) else 0.0
    return float(a @ b / denominator)


def _zero_in_exact_arithmetic(name: str) -> bool:
    """The key biases of the mask decoder's attentions: a key bias adds the same amount to every key's logit
    of a query, which the softmax cancels, so the true gradient is 0 (memory attention's keys are rotated
    by RoPE first, so its key biases do get a gradient)."""
    return name.startswith("sam_mask_decoder.transformer.") and name.endswith("k_proj.bias")


@pytest.mark.slow
@pytest.mark.parametrize("make_plan", [_click_plan, _mask_plan], ids=["clicks-box-corrections", "masks"])
def test_one_training_step_equals_official_loss_and_gradients(tmp_path, make_plan):
    torch.manual_seed(0)
    official, ours = twin_models(tmp_path, SIZE)
    official.prob_to_sample_from_gt_for_train = 0.0  # every correction click from the errors, on both sides
    settings = PromptSettings(prob_click_from_truth=0.0)
    batch = collate(_clips(seed=3))
    plan = make_plan(batch)

    set_official_prompts(official, plan)
    torch.manual_seed(11)  # the official draws its correction clicks from the global generator
    official_outputs = official(official_input(batch))
    official_total = official_loss()(official_outputs, batch.masks)["core_loss"]
    official_total.backward()

    frames = forward_clips(ours, batch, plan, settings, torch.Generator().manual_seed(11))
    total = clip_losses(frames, batch.masks, num_objects=float(batch.num_objects))["total"]
    total.backward()

    assert abs(total.item() - official_total.item()) <= 1e-5 * abs(official_total.item())
    official_grads = {n: p.grad for n, p in official.named_parameters() if p.grad is not None}
    our_grads = {n: p.grad for n, p in ours.named_parameters() if p.grad is not None}
    assert set(our_grads) == set(official_grads)
    worst_cosine, worst_diff = 1.0, 0.0
    for name, ref in official_grads.items():
        if _zero_in_exact_arithmetic(name):
            # Rounding noise on both sides (about 1e-8): compare sizes, a direction means nothing.
            assert float(our_grads[name].norm()) < 1e-6 and float(ref.norm()) < 1e-6, name
            continue
        cosine = _cosine(our_grads[name], ref)
        worst_cosine = min(worst_cosine, cosine)
        worst_diff = max(worst_diff, float((our_grads[name] - ref).abs().max()))
        assert cosine >= 0.9999, (name, cosine)
    print(
        f"loss {total.item():.6f} vs {official_total.item():.6f}; {len(our_grads)} gradients, "
        f"lowest cosine {worst_cosine:.8f}, largest difference {worst_diff:.3g}"
    )
    assert not math.isnan(worst_diff)


def _mix(plans: list[tuple[str, int, int, float]]) -> dict[str, float]:
    """Frequencies over (first-frame prompt kind, initial frames, corrected frames, clicks per frame)."""
    count = len(plans)
    mix = {kind: sum(p[0] == kind for p in plans) / count for kind in ("mask", "box", "click")}
    for n in (1, 2):
        mix[f"{n} initial frames"] = sum(p[1] == n for p in plans) / count
    for n in (0, 1, 2):
        mix[f"{n} corrected frames"] = sum(p[2] == n for p in plans) / count
    mix["correction clicks per frame"] = sum(p[3] for p in plans) / count
    return mix


def test_prompt_mix_matches_official_over_1000_draws(tmp_path):
    draws, num_frames, clicks = 1000, 8, 7
    masks = torch.zeros(num_frames, 1, 32, 32, dtype=torch.bool)
    masks[:, 0, 8:20, 10:24] = True
    official, _ = twin_models(tmp_path, image_size=64)
    torch.manual_seed(0)
    official_input_ = official_input(
        collate([Clip(np.zeros((num_frames, 32, 32, 3), np.uint8), masks.numpy(), (1,))])
    )
    theirs = []
    for _ in range(draws):
        out = official.prepare_prompt_inputs({}, official_input_)
        first = out["init_cond_frames"][0]
        labels = out["point_inputs_per_frame"].get(first, {}).get("point_labels")
        kind = "mask" if labels is None else ("box" if int(labels[0, 0]) == 2 else "click")
        corrected = len(out["frames_to_add_correction_pt"])
        theirs.append((kind, len(out["init_cond_frames"]), corrected, corrected * clicks / num_frames))
    generator = torch.Generator().manual_seed(0)
    ours = []
    for _ in range(draws):
        plan = plan_prompts(masks, PromptSettings(correction_clicks=clicks), generator)
        corrected = len(plan.corrected_frames)
        ours.append((plan.kinds[0], len(plan.init_frames), corrected, corrected * clicks / num_frames))
    ours_mix, their_mix = _mix(ours), _mix(theirs)
    for name, expected in their_mix.items():
        if name == "correction clicks per frame":
            spread = float(np.std([p[3] for p in theirs])) * math.sqrt(2 / draws)
        else:
            spread = math.sqrt(max(expected * (1 - expected), 0.25 / draws) * 2 / draws)
        assert abs(ours_mix[name] - expected) <= 4.5 * spread, (name, ours_mix[name], expected)
    assert their_mix["mask"] > 0.4 and their_mix["box"] > 0.15 and their_mix["click"] > 0.15  # a real mix
