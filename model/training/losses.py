"""The training losses of SAM 2: focal and dice on the masks, L1 on the predicted IoU, and the object score.

For each frame and each prompting step (`model.training.clip_forward.FrameSteps`), with M candidate masks:
  * focal (alpha 0.25, gamma 2, mean over pixels) and dice per candidate; only the candidate with the
    lowest ``20 * focal + dice`` is back-propagated;
  * the IoU loss is the L1 distance between each candidate's predicted and actual IoU, averaged over all
    candidates;
  * the object-score loss is the binary cross-entropy of the object-score logit against "the object is on
    this frame"; the three mask losses count only where it is.
Each sum is divided by the number of objects (averaged over processes when training on several), and the
total is ``20 * mask + 1 * dice + 1 * iou + 1 * object score`` summed over frames and steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.training.clip_forward import FrameSteps

FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0

LOSS_PARTS = ("mask", "dice", "iou", "object_score")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the four parts in the total; the defaults are the official ones."""

    mask: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA
) -> torch.Tensor:
    """Sigmoid focal loss of ``N, M, H, W`` logits, averaged over pixels: N, M."""
    prob = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = cross_entropy * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - the soft Dice coefficient (smoothed by 1) of ``N, M, H, W`` logits: N, M."""
    prob, targets = logits.sigmoid().flatten(2), targets.flatten(2)
    return 1 - (2 * (prob * targets).sum(-1) + 1) / (prob.sum(-1) + targets.sum(-1) + 1)


def iou_loss(logits: torch.Tensor, targets: torch.Tensor, predicted_ious: torch.Tensor) -> torch.Tensor:
    """L1 distance between the predicted IoU and the IoU of the thresholded mask: N, M."""
    predicted, truth = logits.flatten(2) > 0, targets.flatten(2) > 0
    intersection = (predicted & truth).sum(-1).float()
    union = (predicted | truth).sum(-1).float()
    return (predicted_ious - intersection / union.clamp(min=1.0)).abs()


def object_score_loss(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``N, 1`` object-score logits against presence (N, 1 float), summed."""
    return F.binary_cross_entropy_with_logits(scores, present, reduction="none").mean(1).sum()


def step_losses(
    multimasks: torch.Tensor,
    ious: torch.Tensor,
    object_scores: torch.Tensor,
    targets: torch.Tensor,
    weights: LossWeights,
) -> dict[str, torch.Tensor]:
    """The four parts (not yet divided by the object count) of one prompting step of one frame.

    ``multimasks`` N, M, S, S logits; ``ious`` N, M; ``object_scores`` N, 1; ``targets`` N, 1, S, S float.
    """
    targets = targets.expand_as(multimasks)
    focal, dice = focal_loss(multimasks, targets), dice_loss(multimasks, targets)
    iou = iou_loss(multimasks, targets, ious)
    present = (targets[:, 0] > 0).flatten(1).any(dim=-1, keepdim=True).float()  # N, 1
    if multimasks.shape[1] > 1:
        best = torch.argmin(focal * weights.mask + dice * weights.dice, dim=-1, keepdim=True)  # N, 1
        focal, dice = focal.gather(1, best), dice.gather(1, best)
        iou = iou.mean(dim=-1, keepdim=True)
    return {
        "mask": (focal * present).sum(),
        "dice": (dice * present).sum(),
        "iou": (iou * present).sum(),
        "object_score": object_score_loss(object_scores, present),
    }


def clip_losses(
    frames: list[FrameSteps],
    targets: torch.Tensor,
    num_objects: float,
    weights: LossWeights | None = None,
) -> dict[str, torch.Tensor]:
    """The losses of a batch of clips: each part and ``"total"``, summed over frames and steps.

    Arguments:
      frames: the forward's output, one `FrameSteps` per frame.
      targets: T, N, S, S bool ground truth.
      num_objects: what each sum is divided by: the objects per batch (averaged over processes).
    """
    weights = weights or LossWeights()
    parts = {name: targets.new_zeros((), dtype=torch.float32) for name in LOSS_PARTS}
    for frame, truth in zip(frames, targets):
        target = truth[:, None].float()
        for multimasks, ious, scores in zip(frame.multimasks, frame.ious, frame.object_scores):
            for name, value in step_losses(multimasks, ious, scores, target, weights).items():
                parts[name] = parts[name] + value / num_objects
    parts["total"] = sum(getattr(weights, name) * parts[name] for name in LOSS_PARTS)
    return parts
