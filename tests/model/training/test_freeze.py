"""Freeze modes leave the right parameters trainable, a frozen encoder records no graph, and activation
checkpointing of the Hiera blocks changes neither outputs nor gradients."""

from __future__ import annotations

import pytest
import torch

from model import build_sam2
from model.training.freeze import FREEZE_MODES, enable_activation_checkpointing, encoder_needs_grad, freeze

CONFIG = "sam2.1_hiera_tiny"


@pytest.fixture
def tiny() -> torch.nn.Module:
    model = build_sam2(CONFIG, device="cpu", image_size=128, apply_postprocessing=False)
    with torch.no_grad():  # random weights judge every object absent, which cuts the masks' gradients
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 5.0
    return model.train()


def trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_freeze_modes_leave_the_right_parameters_trainable(tiny) -> None:
    everything = {name for name, _ in tiny.named_parameters()}
    freeze(tiny, "image-encoder")
    assert trainable(tiny) == {n for n in everything if not n.startswith("image_encoder.")}
    freeze(tiny, "all-but-heads")
    heads = ("sam_prompt_encoder.", "sam_mask_decoder.")
    assert trainable(tiny) == {n for n in everything if n.startswith(heads)}
    freeze(tiny, "none")
    assert trainable(tiny) == everything


def test_unknown_freeze_mode_lists_the_valid_ones(tiny) -> None:
    with pytest.raises(ValueError, match="'none', 'image-encoder', 'all-but-heads'"):
        freeze(tiny, "encoder")
    assert FREEZE_MODES == ("none", "image-encoder", "all-but-heads")


def test_frozen_image_encoder_records_no_graph_but_its_projections_train(tiny) -> None:
    freeze(tiny, "image-encoder")
    assert encoder_needs_grad(tiny)  # conv_s0 / conv_s1 of the mask decoder still train
    images = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    features = tiny.encode_image(images)
    assert features.embedding.grad_fn is None and all(p.grad_fn is None for p in features.pos)
    out = tiny.predict_heads(
        features.embedding + tiny.no_mem_embed.view(1, -1, 1, 1),
        features.high_res,
        point_coords=torch.tensor([[[64.0, 64.0]]]),
        point_labels=torch.tensor([[1]]),
        multimask=True,
    )
    (out.low_res_multimasks.mean() + out.ious.sum() + out.object_score_logits.sum()).backward()
    assert all(p.grad is None for p in tiny.image_encoder.parameters())
    assert tiny.sam_mask_decoder.conv_s0.weight.grad is not None
    assert tiny.sam_mask_decoder.conv_s1.weight.grad is not None
    assert tiny.no_mem_embed.grad is not None


def test_encoder_needs_no_grad_once_its_projections_are_frozen_too(tiny) -> None:
    freeze(tiny, "all-but-heads")
    assert encoder_needs_grad(tiny)
    tiny.sam_mask_decoder.conv_s0.requires_grad_(False)
    tiny.sam_mask_decoder.conv_s1.requires_grad_(False)
    assert not encoder_needs_grad(tiny)


def trunk_pass(trunk: torch.nn.Module, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The trunk's outputs and the gradients of a fixed weighted sum of them (parameters, then input)."""
    trunk.zero_grad(set_to_none=True)
    images = images.clone().requires_grad_(True)
    outputs = trunk(images)
    gen = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outputs)
    loss.backward()
    return [o.detach() for o in outputs], [p.grad for p in trunk.parameters()] + [images.grad]


def test_activation_checkpointing_keeps_outputs_and_gradients_bit_identical(tiny) -> None:
    trunk = tiny.image_encoder.trunk
    assert trunk.activation_checkpointing is False
    calls = []
    trunk.blocks[0].register_forward_pre_hook(lambda *_: calls.append(1))
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain_out, plain_grads = trunk_pass(trunk, images)
    assert len(calls) == 1
    enable_activation_checkpointing(tiny)
    ckpt_out, ckpt_grads = trunk_pass(trunk, images)
    assert len(calls) == 3  # the forward, then its recomputation in the backward pass
    assert all(torch.equal(a, b) for a, b in zip(plain_out, ckpt_out, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(plain_grads, ckpt_grads, strict=True))
    with torch.no_grad():
        trunk(images)
    assert len(calls) == 4  # nothing to recompute without gradients
    enable_activation_checkpointing(tiny, False)
    assert trunk.activation_checkpointing is False
