"""Building a video predictor the way the official video configs do: the network, the postprocessing
defaults of video, the predictor flags, and the official ``hydra_overrides_extra`` spelling of them.

The predictor class is passed in (`video_predictor` calls this), so this module does not import it.
"""

from __future__ import annotations

import os
from typing import TypeVar

import torch

from model.loading.build import build_sam2
from model.loading.compile import compile_components
from model.loading.configs import SAM2Config

P = TypeVar("P")

_PREDICTOR_OVERRIDES = {
    "fill_hole_area": int,
    "non_overlap_masks": bool,
    "clear_non_cond_mem_around_input": bool,
    "add_all_frames_to_correct_as_cond": bool,
    "binarize_mask_from_pts_for_mem_enc": bool,
}


def _parse_hydra_overrides(overrides: list[str]) -> dict:
    """The official ``"++model.key=value"`` overrides we understand: image_size and the predictor flags."""
    parsed = {}
    for item in overrides:
        key, sep, value = item.lstrip("+").partition("=")
        key = key.removeprefix("model.")
        if not sep or (key != "image_size" and key not in _PREDICTOR_OVERRIDES):
            raise ValueError(
                f"unsupported override {item!r}: only '++model.image_size=N' and "
                f"'++model.<flag>=<value>' for {sorted(_PREDICTOR_OVERRIDES)} are understood; "
                "pass predictor options as keyword arguments instead"
            )
        if key == "image_size" or _PREDICTOR_OVERRIDES[key] is int:
            parsed[key] = int(value)
        else:
            parsed[key] = value.strip().lower() in ("true", "1", "yes")
    return parsed


def build_video_predictor(
    predictor_class: type[P],
    config: str | SAM2Config = "sam2.1_hiera_tiny",
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    mode: str = "eval",
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
    image_size: int | None = None,
    **kwargs,
) -> P:
    """Build a ``predictor_class`` (``SAM2VideoPredictor``): the network plus the video bookkeeping.

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
        official ``ckpt_path`` and ``hydra_overrides_extra`` (``"++model.<option>=<value>"``) also work.
    """
    if checkpoint is None and "ckpt_path" in kwargs:
        checkpoint = kwargs.pop("ckpt_path")
    overrides = _parse_hydra_overrides(list(kwargs.pop("hydra_overrides_extra", None) or []))
    image_size = overrides.pop("image_size", image_size)
    options = {}
    if apply_postprocessing:
        options.update(binarize_mask_from_pts_for_mem_enc=True, fill_hole_area=8)
    options.update(overrides)
    options.update(kwargs)
    model = build_sam2(
        config,
        checkpoint,
        device=device,
        mode=mode,
        apply_postprocessing=apply_postprocessing,
        image_size=image_size,
    )
    if vos_optimized:
        compile_components(model)
    return predictor_class(model, **options)
