"""Compose SAM 2 models from the plain-Python configs and load official checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from model.checkpoint import load_into, read_checkpoint
from model.configs import SAM2Config, resolve_config
from model.device import resolve_device
from model.hiera import Hiera
from model.image_encoder import ImageEncoder
from model.mask_decoder import MaskDecoder
from model.memory_attention import MemoryAttention
from model.memory_encoder import MemoryEncoder
from model.neck import FpnNeck
from model.position_encoding import SinePositionEncoding2d
from model.prompt_encoder import PromptEncoder
from model.sam2 import SAM2Model
from model.two_way_transformer import TwoWayTransformer


def compose_sam2(cfg: SAM2Config, apply_postprocessing: bool = True) -> SAM2Model:
    """Instantiate the network for ``cfg`` with freshly initialised weights (on the CPU)."""
    trunk = Hiera(
        embed_dim=cfg.embed_dim,
        num_heads=cfg.num_heads,
        stages=cfg.stages,
        global_att_blocks=cfg.global_att_blocks,
        window_spec=cfg.window_spec,
        window_pos_embed_bkg_spatial_size=cfg.window_pos_embed_bkg_spatial_size,
    )
    neck = FpnNeck(
        d_model=256,
        backbone_channel_list=cfg.backbone_channel_list,
        position_encoding=SinePositionEncoding2d(256),
    )
    grid = cfg.image_size // 16
    prompt_encoder = PromptEncoder(
        embed_dim=256,
        image_embedding_size=(grid, grid),
        input_image_size=(cfg.image_size, cfg.image_size),
        mask_in_chans=16,
    )
    mask_decoder = MaskDecoder(
        transformer_dim=256,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, num_heads=8, mlp_dim=2048),
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        use_high_res_features=True,
        iou_prediction_use_sigmoid=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
        # The official "postprocessing" switch: fall back to the most stable multimask candidate
        # when a single-mask prediction is unstable.
        dynamic_multimask_via_stability=apply_postprocessing,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
    )
    return SAM2Model(
        image_encoder=ImageEncoder(trunk, neck, scalp=1),
        memory_attention=MemoryAttention(),
        memory_encoder=MemoryEncoder(),
        sam_prompt_encoder=prompt_encoder,
        sam_mask_decoder=mask_decoder,
        image_size=cfg.image_size,
        sam21=cfg.is_sam21,
    )


def build_sam2(
    config: str | SAM2Config = "sam2.1_hiera_tiny",
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    mode: str = "eval",
    apply_postprocessing: bool = True,
    image_size: int | None = None,
    **kwargs,
) -> SAM2Model:
    """Build a SAM 2 model and, if given, load an official checkpoint into it.

    Arguments:
      config: our name (``"sam2.1_hiera_tiny"``), an official config name
        (``"configs/sam2.1/sam2.1_hiera_t.yaml"``), a Hugging Face id, or a ``SAM2Config``.
      checkpoint: path to an official ``.pt`` file (``{"model": state_dict}``); ``None`` keeps random weights.
      device: ``"auto"`` (cuda > mps > cpu), or any torch device.
      mode: ``"eval"`` (default) or ``"train"``.
      apply_postprocessing: the official default; enables the dynamic multimask fallback.
      image_size: override the input resolution (e.g. 512 for speed); the weights are unchanged.
      **kwargs: accepted for compatibility with the official signature
        (``ckpt_path``, ``hydra_overrides_extra``).

    Returns:
      the ``SAM2Model`` on ``device`` in the requested mode.
    """
    if checkpoint is None and "ckpt_path" in kwargs:
        checkpoint = kwargs.pop("ckpt_path")
    kwargs.pop("hydra_overrides_extra", None)
    if kwargs:
        raise TypeError(f"build_sam2 got unexpected arguments: {sorted(kwargs)}")
    cfg = resolve_config(config)
    if image_size is not None:
        cfg = cfg.with_image_size(image_size)
    model = compose_sam2(cfg, apply_postprocessing=apply_postprocessing)
    if checkpoint is not None:
        load_into(model, read_checkpoint(Path(checkpoint)), cfg.name)
    model = model.to(resolve_device(device))
    return model.train() if mode == "train" else model.eval()


def from_pretrained(model_id: str, device: str | torch.device = "auto", **kwargs) -> SAM2Model:
    """Build the model for a Hugging Face id (``"facebook/sam2.1-hiera-tiny"``, from the hub or its cache)
    or for an official checkpoint file (``"checkpoints/sam2.1_hiera_tiny.pt"``)."""
    from model.hub import locate_checkpoint

    config_name, path = locate_checkpoint(model_id)
    return build_sam2(config_name, path, device=device, **kwargs)


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


def build_sam2_video_predictor(
    config: str | SAM2Config = "sam2.1_hiera_tiny",
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    mode: str = "eval",
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
    image_size: int | None = None,
    **kwargs,
):
    """Build a ``SAM2VideoPredictor`` (the network plus the video bookkeeping).

    Arguments:
      config, checkpoint, device, mode, image_size: as for ``build_sam2``.
      apply_postprocessing: the official video defaults: the dynamic multimask fallback, binarised masks
        for the memory of clicked frames, and filling holes of up to 8 pixels in the low-resolution logits.
        Keyword arguments override the last two.
      vos_optimized: ``torch.compile`` the memory attention and memory encoder (their shapes vary little
        while tracking); accepted and ignored where ``torch.compile`` is unavailable. Results can drift
        slightly from the eager ones, as with the official option.
      **kwargs: ``SAM2VideoPredictor`` options (``fill_hole_area``, ``non_overlap_masks``,
        ``clear_non_cond_mem_around_input``, ``add_all_frames_to_correct_as_cond``,
        ``binarize_mask_from_pts_for_mem_enc``, ``state_ram_budget_mb``, ``feature_cache_size``); the
        official ``ckpt_path`` and ``hydra_overrides_extra`` (``"++model.<option>=<value>"``) also work.
    """
    from model.video_predictor import SAM2VideoPredictor

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
    if vos_optimized and hasattr(torch, "compile"):
        model.memory_attention.forward = torch.compile(model.memory_attention.forward, dynamic=True)
        model.memory_encoder.forward = torch.compile(model.memory_encoder.forward, dynamic=False)
    return SAM2VideoPredictor(model, **options)
