"""SAM 2 mask decoder: output tokens + prompt tokens + image embedding -> masks, IoUs, object score."""

from __future__ import annotations

import torch
from torch import nn

from model.network.blocks import MLP, LayerNorm2d
from model.network.two_way_transformer import TwoWayTransformer


class MaskDecoder(nn.Module):
    """Predicts ``num_multimask_outputs + 1`` masks from learned output tokens and picks what to return.

    Token order entering the transformer is ``[obj_score?, iou, mask_0 .. mask_M, prompts...]``. Mask 0 is
    the single-mask answer, masks 1..M the ambiguity-aware ones. With ``use_high_res_features`` the
    upscaling path adds the backbone's stride-8 and stride-4 features (projected by the image model's
    ``conv_s1`` / ``conv_s0``, which live here for checkpoint compatibility).
    """

    def __init__(
        self,
        transformer_dim: int = 256,
        transformer: nn.Module | None = None,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = True,
        iou_prediction_use_sigmoid: bool = True,
        pred_obj_scores: bool = True,
        pred_obj_scores_mlp: bool = True,
        use_multimask_token_for_obj_ptr: bool = True,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
    ) -> None:
        super().__init__()
        d = transformer_dim
        self.transformer_dim = d
        self.transformer = transformer if transformer is not None else TwoWayTransformer(embedding_dim=d)
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1

        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, d)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr

        # Indices 0..4 are fixed by the checkpoint; the high-res path calls the pieces one by one.
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(d, d // 4, kernel_size=2, stride=2),
            LayerNorm2d(d // 4),
            activation(),
            nn.ConvTranspose2d(d // 4, d // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(d, d // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(d, d // 4, kernel_size=1)

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(d, d, d // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            d,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if pred_obj_scores:
            self.pred_obj_score_head = MLP(d, d, 1, 3) if pred_obj_scores_mlp else nn.Linear(d, 1)

        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode masks for a batch of prompt sets.

        Arguments:
            image_embeddings: B_img, C, h, w (B_img = 1 with ``repeat_image``, else B).
            image_pe: 1, C, h, w, from ``PromptEncoder.get_dense_pe``.
            sparse_prompt_embeddings: B, N, C.  dense_prompt_embeddings: B, C, h, w.
            multimask_output: return the M ambiguity masks instead of the single one.
            repeat_image: share one image embedding across the B prompt sets.
            high_res_features: [stride-4 B, C/8, 4h, 4w; stride-8 B, C/4, 2h, 2w], already projected.
        Returns:
            masks B, K, 4h, 4w (logits), iou_pred B, K, sam_tokens_out B, 1, C (object-pointer token),
            object_score_logits B, 1; K = M with multimask output, else 1.
        """
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_all_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image,
            high_res_features,
        )

        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._single_or_best_multimask(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, :1], iou_pred[:, :1]

        if multimask_output and self.use_multimask_token_for_obj_ptr:
            # The pointer follows the mask a caller will keep: the highest predicted IoU.
            best = iou_pred.argmax(dim=-1)
            rows = torch.arange(best.shape[0], device=best.device)
            sam_tokens_out = mask_tokens_out[:, 1:][rows, best].unsqueeze(1)
        else:
            # Training tracked with the single-mask token, so it stays the pointer in every other case.
            sam_tokens_out = mask_tokens_out[:, :1]
        return masks, iou_pred, sam_tokens_out, object_score_logits

    def predict_all_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every mask before selection.

        Returns masks B, M+1, 4h, 4w; iou B, M+1; mask tokens B, M+1, C; object score logits B, 1.
        """
        batch = sparse_prompt_embeddings.shape[0]
        learned = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            learned.insert(0, self.obj_score_token.weight)
        first_mask = len(learned) - 1  # index of mask token 0 in the token sequence
        out_tokens = torch.cat(learned, dim=0).unsqueeze(0).expand(batch, -1, -1)
        tokens = torch.cat([out_tokens, sparse_prompt_embeddings], dim=1)  # B, T, C

        if repeat_image:
            src = image_embeddings.repeat_interleave(batch, dim=0)
        else:
            if image_embeddings.shape[0] != batch:
                raise ValueError(
                    f"{image_embeddings.shape[0]} image embeddings for {batch} prompt sets; "
                    "pass repeat_image=True to share one image"
                )
            src = image_embeddings
        src = src + dense_prompt_embeddings  # B, C, h, w
        if image_pe.shape[0] != 1:
            raise ValueError("image_pe must have batch size 1 (use PromptEncoder.get_dense_pe())")
        pos = image_pe.expand(batch, -1, -1, -1)
        b, c, h, w = src.shape

        hs, src = self.transformer(src, pos, tokens)  # B, T, C; B, hw, C
        iou_token_out = hs[:, first_mask - 1]
        mask_tokens_out = hs[:, first_mask : first_mask + self.num_mask_tokens]  # B, M+1, C

        src = src.transpose(1, 2).reshape(b, c, h, w)
        upscaled = self._upscale(src, high_res_features)  # B, C/8, 4h, 4w

        hyper = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # B, M+1, C/8
        b, c8, h4, w4 = upscaled.shape
        masks = (hyper @ upscaled.reshape(b, c8, h4 * w4)).reshape(b, -1, h4, w4)

        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            # Without a score head the object is always taken as present (sigmoid(10) ~ 1).
            object_score_logits = iou_pred.new_full((iou_pred.shape[0], 1), 10.0)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _upscale(self, src: torch.Tensor, high_res_features: list[torch.Tensor] | None) -> torch.Tensor:
        if not self.use_high_res_features:
            return self.output_upscaling(src)
        deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        x = act1(norm1(deconv1(src) + feat_s1))
        return act2(deconv2(x) + feat_s0)

    def _stability(self, logits: torch.Tensor) -> torch.Tensor:
        """IoU of the mask thresholded at +delta and at -delta: ..., H, W -> ... (1 for empty masks)."""
        flat = logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        inner = (flat > delta).sum(-1).float()
        outer = (flat > -delta).sum(-1).float()
        return torch.where(outer > 0, inner / outer, torch.ones_like(inner))

    def _single_or_best_multimask(
        self, masks: torch.Tensor, iou_pred: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep mask 0 where it is stable; elsewhere fall back to the multimask with the best IoU."""
        best = iou_pred[:, 1:].argmax(dim=-1) + 1  # B
        rows = torch.arange(masks.shape[0], device=masks.device)
        best_masks = masks[rows, best].unsqueeze(1)  # B, 1, H, W
        best_iou = iou_pred[rows, best].unsqueeze(1)  # B, 1
        stable = self._stability(masks[:, 0]) >= self.dynamic_multimask_stability_thresh  # B
        out_masks = torch.where(stable[:, None, None, None], masks[:, :1], best_masks)
        out_iou = torch.where(stable[:, None], iou_pred[:, :1], best_iou)
        return out_masks, out_iou
