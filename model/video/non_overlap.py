"""Non-overlapping masks: each pixel goes to the object with the highest logit there (the official
``_apply_non_overlapping_constraints``), for the video predictor's ``non_overlap_masks`` and VOS merging."""

from __future__ import annotations

import torch

OVERLAP_LOSER_MAX_LOGIT = -10.0
"""With ``non_overlap_masks``, an object that does not win a pixel has its logit there capped at -10."""


def apply_non_overlap(masks: torch.Tensor) -> torch.Tensor:
    """Keep each pixel for the highest-scoring object; the others' logits there are capped at -10.

    ``masks``: N_obj, 1, H, W logits.
    """
    if masks.shape[0] == 1:
        return masks
    winner = torch.argmax(masks, dim=0, keepdim=True)  # 1, 1, H, W
    keep = winner == torch.arange(masks.shape[0], device=masks.device)[:, None, None, None]
    return torch.where(keep, masks, masks.clamp(max=OVERLAP_LOSER_MAX_LOGIT))
