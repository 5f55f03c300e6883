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
from model.training.prompts import PromptPlan, PromptSettings, error_clicks, noisy_box
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

    assert abs(total.item() - official_total.item()) <= 1e-5 * abs(float(official_total))
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
        f"loss {float(total):.6f} vs {float(official_total):.6f}; {len(our_grads)} gradients, "
        f"lowest cosine {worst_cosine:.8f}, largest difference {worst_diff:.3g}"
    )
    assert not math.isnan(worst_diff)
