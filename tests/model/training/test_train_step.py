"""Optimizer steps: a step restored from saved state continues exactly, micro-batch numbering is the same on
one process accumulating as on several, and bf16 autocast trains."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from model import build_sam2
from model.training.batch import Clip, collate
from model.training.clip_training import ClipTraining
from model.training.optimizer import build_optimizer
from model.training.prompts import PromptPlan
from model.training.schedule import CosineSchedule
from model.training.train_step import TrainStep, micro_batch_index

SIZE = 64


def _network():
    torch.manual_seed(0)
    model = build_sam2("sam2.1_hiera_tiny", device="cpu", image_size=SIZE, apply_postprocessing=False)
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 2.0
    return model.train()


def _batch(index: int):
    rng = np.random.default_rng(index)
    frames = rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((2, 1, SIZE, SIZE), dtype=bool)
    x = int(rng.integers(0, 30))
    masks[:, 0, 10:40, x : x + 25] = True
    return collate([Clip(frames, masks, (1,))])


def _stepper(model, precision: str = "fp32") -> TrainStep:
    optimizer = build_optimizer(model, lr=1e-4, vision_lr=5e-5)
    return TrainStep(
        ClipTraining(model), optimizer, CosineSchedule(optimizer, total_steps=4), seed=3, precision=precision
    )


@pytest.mark.slow
def test_a_restored_step_continues_as_if_never_stopped():
    straight = _stepper(_network())
    losses = [straight.run(s, [_batch(s)]).losses["total"] for s in range(3)]

    first = _stepper(_network())
    for s in range(2):
        first.run(s, [_batch(s)])
    saved_model = copy.deepcopy(first.training.model.state_dict())
    saved_state = copy.deepcopy(first.state_dict())
    resumed_model = _network()
    resumed_model.load_state_dict(saved_model)
    resumed = _stepper(resumed_model)
    resumed.load_state_dict(saved_state)
    assert resumed.run(2, [_batch(2)]).losses["total"] == losses[2]
    for name, value in straight.training.model.state_dict().items():
        assert torch.equal(value, resumed.training.model.state_dict()[name]), name


def test_micro_batches_are_numbered_the_same_on_one_process_or_many():
    one_process = [micro_batch_index(step, a, 0, 1, 2) for step in range(3) for a in range(2)]
    two_processes = [micro_batch_index(step, 0, rank, 2, 1) for step in range(3) for rank in range(2)]
    assert one_process == two_processes == list(range(6))
    four = sorted(micro_batch_index(1, a, r, 2, 2) for a in range(2) for r in range(2))
    assert four == [4, 5, 6, 7]


@pytest.mark.slow
def test_bf16_autocast_trains_with_finite_losses():
    stepper = _stepper(_network(), precision="bf16")
    result = stepper.run(0, [_batch(0)])
    assert all(np.isfinite(v) for v in result.losses.values())
    assert result.grad_norm > 0


def test_a_clip_made_only_of_mask_prompts_gives_zero_gradients_not_an_error():
    model = _network()
    training = ClipTraining(model)
    plan = PromptPlan(init_frames=[0, 1], corrected_frames=[], kinds={0: "mask", 1: "mask"})
    losses = training(_batch(0), plan, torch.Generator(), num_objects=1.0)
    losses["total"].backward()  # a 2-frame clip whose both frames are initial mask prompts: nothing to learn
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and not g.any() for g in grads)


def test_a_step_with_non_finite_gradients_is_skipped_and_changes_no_weight():
    model = _network()
    stepper = _stepper(model)
    forward = stepper.training.forward

    def poisoned(*args, **kwargs):
        losses = forward(*args, **kwargs)
        losses["total"] = losses["total"] * float("nan")
        return losses

    stepper.training.forward = poisoned
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = stepper.run(0, [_batch(0)])
    assert result.skipped and not np.isfinite(result.grad_norm)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
