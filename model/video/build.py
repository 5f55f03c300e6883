"""Building a video predictor the way the official video configs do: the network, the postprocessing
defaults of video, the predictor flags, and the official ``hydra_overrides_extra`` spelling of them.

`build_video_model` returns the network and the predictor's keyword arguments; the predictor module, which
imports this one, makes the predictor from them (``SAM2VideoPredictor(model, **options)``).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from model.loading.build import build_sam2
from model.loading.compile import compile_components
from model.loading.configs import SAM2Config
from model.loading.overrides import (
    MODEL_OVERRIDES,
    PREDICTOR_OVERRIDES,
    VIDEO_OVERRIDES,
    override_key,
    parse_hydra_overrides,
)
from model.network.sam2 import SAM2Model


def build_video_model(
    config: str | SAM2Config = "sam2.1_hiera_tiny",
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    mode: str = "eval",
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
    image_size: int | None = None,
    **kwargs: Any,
) -> tuple[SAM2Model, dict[str, Any]]:
    """Build the network of a video predictor and the predictor's options, as the official video configs do.

    Arguments:
      config, checkpoint, device, mode, image_size: as for ``build_sam2``.
      apply_postprocessing: the official video defaults: the dynamic multimask fallback, binarised masks
        for the memory of clicked frames, and filling holes of up to 8 pixels in the low-resolution logits.
        Keyword arguments override the last two.
      vos_optimized: ``torch.compile`` the image encoder, memory encoder, memory attention, prompt encoder
        and mask decoder (``model.loading.compile``; ``max-autotune`` with CUDA graphs on CUDA). The first
        frames are slow while they compile (minutes). Where compilation cannot work (no C++ compiler for the
        CPU, a device other than CUDA or CPU) a warning says so and the model runs uncompiled. Results can
        drift slightly from the eager ones, as with the official option.
      **kwargs: ``SAM2VideoPredictor`` options (``fill_hole_area``, ``non_overlap_masks``,
        ``clear_non_cond_mem_around_input``, ``add_all_frames_to_correct_as_cond``,
        ``binarize_mask_from_pts_for_mem_enc``, ``state_ram_budget_mb``, ``feature_cache_size``); the
        official ``ckpt_path`` and ``hydra_overrides_extra``: ``"++model.<option>=<value>"`` for those five
        options and for what ``build_sam2`` understands (`model.loading.overrides`); any other raises
        ValueError naming it.

    Returns:
      the network on ``device``, and the keyword arguments of ``SAM2VideoPredictor(model, **options)``.
    """
    if checkpoint is None and "ckpt_path" in kwargs:
        checkpoint = kwargs.pop("ckpt_path")
    items = kwargs.pop("hydra_overrides_extra", None) or []
    overrides = parse_hydra_overrides(items, VIDEO_OVERRIDES, "build_sam2_video_predictor")
    options: dict[str, Any] = {}
    if apply_postprocessing:
        options.update(binarize_mask_from_pts_for_mem_enc=True, fill_hole_area=8)
    options.update({key: value for key, value in overrides.items() if key in PREDICTOR_OVERRIDES})
    options.update(kwargs)
    model = build_sam2(
        config,
        checkpoint,
        device=device,
        mode=mode,
        apply_postprocessing=apply_postprocessing,
        image_size=image_size,
        hydra_overrides_extra=[item for item in items if override_key(item) in MODEL_OVERRIDES],
    )
    if vos_optimized:
        compile_components(model)
    return model, options
