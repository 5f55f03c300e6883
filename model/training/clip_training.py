"""The network with its training forward and losses as one module: what one process runs and DDP wraps."""

from __future__ import annotations

import torch
from torch import nn

from model.network.sam2 import SAM2Model
from model.training.batch import TrainBatch
from model.training.clip_forward import forward_clips
from model.training.losses import LossWeights, clip_losses
from model.training.prompts import PromptPlan, PromptSettings


class ClipTraining(nn.Module):
    """``forward(batch, plan, generator, num_objects)`` -> the losses of a batch of clips.

    Arguments:
      model: the SAM 2 network being trained (its parameters are this module's, under ``model.``).
      settings: how prompts and correction clicks are simulated.
      weights: the weights of the four loss parts.
      encoder_grad: False computes the image features without a graph (the frozen image encoder).
    """

    def __init__(
        self,
        model: SAM2Model,
        settings: PromptSettings | None = None,
        weights: LossWeights | None = None,
        encoder_grad: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.settings = settings or PromptSettings()
        self.weights = weights or LossWeights()
        self.encoder_grad = encoder_grad

    def forward(
        self, batch: TrainBatch, plan: PromptPlan, generator: torch.Generator, num_objects: float
    ) -> dict[str, torch.Tensor]:
        """The losses (``"total"`` and its four parts) of ``batch`` prompted by ``plan``.

        ``generator`` draws the correction clicks; ``num_objects`` divides each sum (objects per batch,
        averaged over processes)."""
        frames = forward_clips(self.model, batch, plan, self.settings, generator, self.encoder_grad)
        losses = clip_losses(frames, batch.masks, num_objects, self.weights)
        if not losses["total"].requires_grad:
            # Every frame was a mask prompt (a 2-frame clip with 2 initial frames): the outputs are the masks
            # themselves. A zero that touches every trainable weight gives zero gradients, so the step (and
            # every process of a DDP run, which must all reduce the same gradients) goes on.
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            losses["total"] = losses["total"] + 0.0 * sum(p.sum() for p in trainable)
        return losses
