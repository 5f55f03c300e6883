"""The training forward: memory carries gradients between frames, prompts and corrections are what the plan
says, the frozen encoder builds no graph, and prompt simulation is reproducible from its seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import build_sam2
from model.training.batch import Clip, collate
from model.training.clip_forward import forward_clips
from model.training.prompts import PromptPlan, PromptSettings, error_clicks, mask_boxes, plan_prompts

SIZE = 64


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    model = build_sam2("sam2.1_hiera_tiny", device="cpu", image_size=SIZE, apply_postprocessing=False)
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 2.0  # random weights see objects
    return model.train()


def _batch(num_frames: int = 3):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (num_frames, SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((num_frames, 2, SIZE, SIZE), dtype=bool)
    masks[:, 0, 10:30, 12:40] = True
    masks[:, 1, 40:60, 5:25] = True
    return collate([Clip(frames, masks, (1, 2))])


def _click_plan(batch) -> PromptPlan:
    clicks = error_clicks(batch.masks[0][:, None], None, torch.Generator().manual_seed(0))
    return PromptPlan(init_frames=[0], corrected_frames=[0], clicks={0: clicks}, kinds={0: "click"})


def test_a_later_frame_loss_reaches_the_memory_and_the_first_frame(network):
    batch = _batch()
    network.zero_grad(set_to_none=True)
    frames = forward_clips(
        network, batch, _click_plan(batch), PromptSettings(), torch.Generator().manual_seed(1)
    )
    frames[-1].multimasks[0].sum().backward()  # only the last frame, which has no prompt of its own
    assert network.memory_encoder.fuser.layers[0].dwconv.weight.grad.abs().sum() > 0
    assert network.memory_attention.layers[0].cross_attn_image.v_proj.weight.grad.abs().sum() > 0
    # the first frame's prompt path (point embeddings) is reached through the memory
    assert network.sam_prompt_encoder.point_embeddings[1].weight.grad.abs().sum() > 0


def test_corrected_frames_get_seven_more_steps_and_mask_frames_are_the_truth(network):
    batch = _batch()
    settings = PromptSettings(correction_clicks=7)
    with torch.no_grad():
        frames = forward_clips(network, batch, _click_plan(batch), settings, torch.Generator().manual_seed(1))
    assert [len(f.multimasks) for f in frames] == [8, 1, 1]
    assert frames[0].multimasks[0].shape[1] == 3 and frames[0].multimasks[2].shape[1] == 1  # 1 click: 3
    assert frames[1].multimasks[0].shape[1] == 3  # tracked frames always give 3 candidates
    mask_plan = PromptPlan(init_frames=[0], corrected_frames=[], kinds={0: "mask"})
    with torch.no_grad():
        frames = forward_clips(network, batch, mask_plan, settings, torch.Generator().manual_seed(1))
    expected = torch.where(batch.masks[0][:, None], 10.0, -10.0)
    assert torch.equal(frames[0].masks, expected)


def test_frozen_encoder_features_have_no_graph(network):
    batch = _batch(num_frames=2)
    network.zero_grad(set_to_none=True)
    frames = forward_clips(
        network, batch, _click_plan(batch), PromptSettings(correction_clicks=1), torch.Generator(), False
    )
    frames[-1].multimasks[0].sum().backward()
    assert all(p.grad is None for p in network.image_encoder.parameters())
    assert network.sam_mask_decoder.output_upscaling[0].weight.grad is not None


def test_prompt_plans_repeat_from_their_seed_and_an_image_always_gets_clicks():
    masks = torch.zeros(8, 2, 32, 32, dtype=torch.bool)
    masks[:, :, 4:12, 6:20] = True
    first = plan_prompts(masks, PromptSettings(), torch.Generator().manual_seed(5))
    again = plan_prompts(masks, PromptSettings(), torch.Generator().manual_seed(5))
    assert first.init_frames == again.init_frames and first.kinds == again.kinds
    assert first.corrected_frames == again.corrected_frames
    for t, (coords, labels) in first.clicks.items():
        assert torch.equal(coords, again.clicks[t][0]) and torch.equal(labels, again.clicks[t][1])
    for seed in range(20):
        image = plan_prompts(masks[:1], PromptSettings(), torch.Generator().manual_seed(seed))
        assert (
            image.init_frames == [0] and image.kinds[0] in ("box", "click") and image.corrected_frames == [0]
        )


def test_clicks_fall_on_the_errors_and_boxes_on_the_object():
    truth = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    truth[..., 8:16, 8:24] = True
    predicted = torch.zeros_like(truth)
    predicted[..., 20:30, 0:6] = True  # only a false positive, and the whole object missed
    for seed in range(30):
        coords, labels = error_clicks(truth, predicted, torch.Generator().manual_seed(seed))
        x, y = int(coords[0, 0, 0]), int(coords[0, 0, 1])
        assert bool(truth[0, 0, y, x]) == bool(labels[0, 0] == 1)
        assert truth[0, 0, y, x] or predicted[0, 0, y, x]
    assert mask_boxes(truth).tolist() == [[[8, 8, 23, 15]]]
