"""What a fine-tuning run trains, and how the image encoder keeps its memory down.

Freeze modes (``requires_grad`` of every parameter; build the optimizer afterwards, it skips frozen ones):

- ``"none"``: everything trains (the official recipe);
- ``"image-encoder"``: the image encoder (``image_encoder.*``: Hiera trunk and FPN neck) is frozen, as the
  official ``freeze_image_encoder=True`` does;
- ``"all-but-heads"``: only ``sam_prompt_encoder`` and ``sam_mask_decoder`` train.

A frozen encoder needs no ``torch.no_grad()``: when neither its weights nor the images require gradients,
autograd records nothing through it and keeps none of its activations. The mask decoder's ``conv_s0`` and
``conv_s1``, which ``encode_image`` applies to the high-resolution features, still train in every mode.
`encoder_needs_grad` says whether ``encode_image`` as a whole may run under ``torch.no_grad()``.
"""

from __future__ import annotations

from torch import nn

FREEZE_MODES = ("none", "image-encoder", "all-but-heads")
"""The accepted values of `freeze`'s ``mode``."""

HEADS = ("sam_prompt_encoder", "sam_mask_decoder")
"""The components that keep training in ``"all-but-heads"`` mode."""


def freeze(model: nn.Module, mode: str) -> None:
    """Set ``requires_grad`` of every parameter of a SAM 2 network for a freeze mode (see `FREEZE_MODES`).

    Any earlier mode is overwritten: every parameter is set, not only the frozen ones.
    """
    if mode not in FREEZE_MODES:
        valid = ", ".join(repr(m) for m in FREEZE_MODES)
        raise ValueError(f"Unknown freeze mode {mode!r}: choose one of {valid}.")
    model.requires_grad_(mode != "all-but-heads")
    if mode == "image-encoder":
        model.image_encoder.requires_grad_(False)
    elif mode == "all-but-heads":
        for name in HEADS:
            getattr(model, name).requires_grad_(True)


def encoder_needs_grad(model: nn.Module) -> bool:
    """Whether any parameter that ``model.encode_image`` runs requires gradients.

    That is the image encoder plus the mask decoder's ``conv_s0``/``conv_s1`` projections. When False,
    the training forward may wrap ``encode_image`` in ``torch.no_grad()``; when True it must not (the
    projections would get no gradient), and a frozen image encoder still records no graph.
    """
    projections = (getattr(model.sam_mask_decoder, name, None) for name in ("conv_s0", "conv_s1"))
    modules = [model.image_encoder, *(m for m in projections if m is not None)]
    return any(p.requires_grad for module in modules for p in module.parameters())


def enable_activation_checkpointing(model: nn.Module, enabled: bool = True) -> None:
    """Recompute each Hiera block in the backward pass instead of keeping its activations.

    Trades about one more encoder forward per step for most of the encoder's activation memory; outputs and
    gradients are unchanged. It only acts while gradients are recorded (see `Hiera.forward`).
    """
    model.image_encoder.trunk.set_activation_checkpointing(enabled)
