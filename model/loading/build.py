"""Compose SAM 2 models from the plain-Python configs and load official checkpoints."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from model.loading.checkpoint import load_into, read_checkpoint
from model.loading.configs import SAM2Config, resolve_config
from model.loading.device import resolve_device
from model.loading.overrides import MODEL_OVERRIDES, parse_hydra_overrides, set_decoder_overrides
from model.network.hiera import Hiera
from model.network.image_encoder import ImageEncoder
from model.network.mask_decoder import MaskDecoder
from model.network.memory_attention import MemoryAttention
from model.network.memory_encoder import MemoryEncoder
from model.network.neck import FpnNeck
from model.network.position_encoding import SinePositionEncoding2d
from model.network.prompt_encoder import PromptEncoder
from model.network.sam2 import SAM2Model
from model.network.two_way_transformer import TwoWayTransformer


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
    hydra_overrides_extra: Sequence[str] | None = None,
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
      hydra_overrides_extra: official override strings; ``"++model.image_size=N"`` and the mask decoder's
        ``"++model.sam_mask_decoder_extra_args.<dynamic_multimask_...>=<value>"`` are applied (they win over
        the arguments above), any other raises ValueError naming it (`model.loading.overrides`).
      **kwargs: ``ckpt_path``, the official name of ``checkpoint``.

    Returns:
      the ``SAM2Model`` on ``device`` in the requested mode.
    """
    if checkpoint is None and "ckpt_path" in kwargs:
        checkpoint = kwargs.pop("ckpt_path")
    if kwargs:
        raise TypeError(f"build_sam2 got unexpected arguments: {sorted(kwargs)}")
    overrides = parse_hydra_overrides(hydra_overrides_extra or (), MODEL_OVERRIDES, "build_sam2")
    image_size = overrides.pop("image_size", image_size)
    cfg = resolve_config(config)
    if image_size is not None:
        cfg = cfg.with_image_size(int(image_size))
    model = compose_sam2(cfg, apply_postprocessing=apply_postprocessing)
    set_decoder_overrides(model.sam_mask_decoder, overrides)
    if checkpoint is not None:
        load_into(model, read_checkpoint(Path(checkpoint)), cfg.name)
    model = model.to(resolve_device(device))
    return model.train() if mode == "train" else model.eval()


def from_pretrained(model_id: str, device: str | torch.device = "auto", **kwargs) -> SAM2Model:
    """Build the model for a Hugging Face id (``"facebook/sam2.1-hiera-tiny"``, from the hub or its cache)
    or for an official checkpoint file (``"checkpoints/sam2.1_hiera_tiny.pt"``)."""
    from model.loading.hub import locate_checkpoint

    config_name, path = locate_checkpoint(model_id)
    return build_sam2(config_name, path, device=device, **kwargs)
