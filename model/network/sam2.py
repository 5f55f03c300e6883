"""The SAM 2 network: composed components plus the few parameters that tie them together.

This module owns the weights and the single-frame computations (image features, the SAM prompt/mask
heads, mask-as-output). The video tracking step that adds memory lives elsewhere and calls these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.network.blocks import MLP

NO_OBJECT_LOGIT = -1024.0
"""Logit written over every pixel of a frame where the object is judged absent."""

MASK_AS_OUTPUT_SCALE, MASK_AS_OUTPUT_BIAS = 20.0, -10.0
"""A binary mask prompt becomes logits of +10 / -10 when used directly as the output."""


@dataclass
class ImageFeatures:
    """Backbone output for a batch of images.

    ``embedding``: B, 256, h, w raw stride-16 features (``no_mem_embed`` not added);
    ``high_res``: [B, 32, 4h, 4w], [B, 64, 2h, 2w] skips, already projected for the mask decoder;
    ``pos``: position encodings of the three levels, high-res first, each B, 256, *, *.
    """

    embedding: torch.Tensor
    high_res: list[torch.Tensor]
    pos: list[torch.Tensor]

    def select(self, index: int) -> ImageFeatures:
        """The features of one image of the batch, keeping a batch axis of 1."""
        i = index % self.embedding.shape[0]
        pick = slice(i, i + 1)
        return ImageFeatures(
            embedding=self.embedding[pick],
            high_res=[f[pick] for f in self.high_res],
            pos=[p[pick] for p in self.pos],
        )


@dataclass
class HeadOutput:
    """What the SAM heads produce for a batch of B prompts (M = 3 multimask outputs or 1).

    ``low_res_multimasks`` B, M, 4h, 4w and ``high_res_multimasks`` B, M, 16h, 16w logits (fp32);
    ``ious`` B, M; ``low_res_masks`` / ``high_res_masks`` B, 1, *, * the best candidate;
    ``obj_ptr`` B, 256 the object pointer; ``object_score_logits`` B, 1.
    """

    low_res_multimasks: torch.Tensor
    high_res_multimasks: torch.Tensor
    ious: torch.Tensor
    low_res_masks: torch.Tensor
    high_res_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor

    @property
    def iou(self) -> torch.Tensor:
        """B, 1 predicted IoU of the chosen mask (the best candidate is the one with the highest)."""
        return self.ious.max(dim=-1, keepdim=True).values


class SAM2Model(nn.Module):
    """SAM 2 / SAM 2.1: image encoder, SAM heads, memory attention and memory encoder.

    Arguments:
      image_encoder, memory_attention, memory_encoder, sam_prompt_encoder, sam_mask_decoder: the
        components (see ``model.build`` for how the official configurations compose them).
      image_size: side of the square network input (1024 for the official checkpoints).
      num_maskmem: number of memory slots (1 conditioning + 6 previous frames).
      sam21: SAM 2.1 variant: a learned ``no_obj_embed_spatial`` and projected, signed temporal
        encodings for object pointers (``obj_ptr_tpos_proj``).
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        memory_attention: nn.Module,
        memory_encoder: nn.Module,
        sam_prompt_encoder: nn.Module,
        sam_mask_decoder: nn.Module,
        image_size: int = 1024,
        num_maskmem: int = 7,
        sam21: bool = True,
        hidden_dim: int = 256,
        mem_dim: int = 64,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        self.sam_prompt_encoder = sam_prompt_encoder
        self.sam_mask_decoder = sam_mask_decoder

        self.image_size = image_size
        self.backbone_stride = 16
        self.hidden_dim = hidden_dim
        self.mem_dim = mem_dim
        self.num_maskmem = num_maskmem
        self.sam21 = sam21

        # Tracking hyper-parameters shared by all official configurations.
        self.sigmoid_scale_for_mem_enc = 20.0
        self.sigmoid_bias_for_mem_enc = -10.0
        self.max_obj_ptrs_in_encoder = 16
        self.multimask_min_pt_num, self.multimask_max_pt_num = 0, 1
        self.add_tpos_enc_to_obj_ptrs = sam21
        self.use_signed_tpos_enc_to_obj_ptrs = sam21

        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden_dim))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim)) if sam21 else None
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.obj_ptr_proj = MLP(hidden_dim, hidden_dim, hidden_dim, 3)
        self.obj_ptr_tpos_proj: nn.Module = nn.Linear(hidden_dim, mem_dim) if sam21 else nn.Identity()
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, self.no_obj_ptr):
            nn.init.trunc_normal_(p, std=0.02)
        if self.no_obj_embed_spatial is not None:
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, *args, **kwargs):  # noqa: D401 - the network has several entry points
        raise RuntimeError(
            "SAM2Model has no single forward pass; use SAM2ImagePredictor, SAM2AutomaticMaskGenerator "
            "or SAM2VideoPredictor, or call encode_image / predict_heads directly."
        )

    # ------------------------------------------------------------------ image features
    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """Backbone + FPN for normalised images ``B, 3, image_size, image_size``."""
        features, pos = self.image_encoder(images)  # high-res first: strides 4, 8, 16
        high_res = [self.sam_mask_decoder.conv_s0(features[0]), self.sam_mask_decoder.conv_s1(features[1])]
        return ImageFeatures(embedding=features[-1], high_res=high_res, pos=list(pos))

    # ------------------------------------------------------------------ SAM heads
    def predict_heads(
        self,
        embedding: torch.Tensor,
        high_res: list[torch.Tensor] | None,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_prompt: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> HeadOutput:
        """Prompt encoder + mask decoder on already conditioned features, as the tracker uses them.

        Arguments:
          embedding: B, 256, h, w features (memory-conditioned, or with ``no_mem_embed`` added).
          high_res: the two high-resolution skips of ``ImageFeatures``.
          point_coords: B, P, 2 in input-frame pixels (0..image_size); point_labels: B, P int
            (1 positive, 0 negative, 2/3 box corners, -1 padding). Without points a padding point is used.
          mask_prompt: B, 1, H, W logits or mask; resized (antialiased bilinear) to the prompt size.
          multimask: return 3 candidates and pick the best by predicted IoU.
        """
        batch, device = embedding.shape[0], embedding.device
        if point_coords is None:
            point_coords = torch.zeros(batch, 1, 2, device=device)
            point_labels = -torch.ones(batch, 1, dtype=torch.int32, device=device)
        if mask_prompt is not None:
            size = self.sam_prompt_encoder.mask_input_size
            if tuple(mask_prompt.shape[-2:]) != tuple(size):
                mask_prompt = F.interpolate(
                    mask_prompt.float(), size=size, mode="bilinear", align_corners=False, antialias=True
                )
        sparse, dense = self.sam_prompt_encoder(
            points=(point_coords, point_labels), boxes=None, masks=mask_prompt
        )
        low_res_multi, ious, tokens, object_score_logits = self.sam_mask_decoder(
            image_embeddings=embedding,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=False,
            high_res_features=high_res,
        )
        present = object_score_logits > 0  # B, 1
        low_res_multi = torch.where(present[:, :, None, None], low_res_multi, NO_OBJECT_LOGIT).float()
        high_res_multi = F.interpolate(
            low_res_multi, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        token = tokens[:, 0]  # B, 256
        if multimask:
            best = torch.argmax(ious, dim=-1)  # B
            rows = torch.arange(batch, device=device)
            low_res, high_res_best = low_res_multi[rows, best][:, None], high_res_multi[rows, best][:, None]
            if tokens.shape[1] > 1:
                token = tokens[rows, best]
        else:
            low_res, high_res_best = low_res_multi, high_res_multi
        obj_ptr = self._gate_pointer(self.obj_ptr_proj(token), present.float())
        return HeadOutput(
            low_res_multi, high_res_multi, ious, low_res, high_res_best, obj_ptr, object_score_logits
        )

    def mask_as_output(
        self, embedding: torch.Tensor, high_res: list[torch.Tensor] | None, mask: torch.Tensor
    ) -> HeadOutput:
        """Use a binary mask prompt ``B, 1, H, W`` (input resolution) as the output, bypassing SAM.

        The object pointer still comes from the decoder, prompted with the downsampled mask.
        """
        mask = mask.float()
        high_res_masks = mask * MASK_AS_OUTPUT_SCALE + MASK_AS_OUTPUT_BIAS
        low_res_masks = F.interpolate(
            high_res_masks,
            size=(high_res_masks.shape[-2] // 4, high_res_masks.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        ious = mask.new_ones(mask.shape[0], 1)
        obj_ptr = self.predict_heads(embedding, high_res, mask_prompt=self.mask_downsample(mask)).obj_ptr
        present = (mask.flatten(1) > 0).any(dim=1, keepdim=True).float()  # B, 1
        object_score_logits = MASK_AS_OUTPUT_SCALE * present + MASK_AS_OUTPUT_BIAS
        obj_ptr = self._gate_pointer(obj_ptr, present)
        return HeadOutput(
            low_res_masks, high_res_masks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits
        )

    def _gate_pointer(self, obj_ptr: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        # An absent object's pointer is replaced by the learned "no object" pointer.
        return present * obj_ptr + (1 - present) * self.no_obj_ptr

    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        """Whether a frame with ``num_points`` clicks asks for 3 candidates (tracking frames always do)."""
        return self.multimask_min_pt_num <= num_points <= self.multimask_max_pt_num
