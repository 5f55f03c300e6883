"""The training forward pass over a batch of clips, through the same network code as tracking.

Every object of the batch is tracked through its clip at once (a batch of N objects): the initial
conditioning frames first, then the other frames in time order. Each frame runs what tracking runs:
`SAM2Model.mask_as_output` for a mask prompt; otherwise memory attention
(`model.video.step.condition_group` over what `model.video.tracking.read_memory` selects), then
`SAM2Model.predict_heads`; then the simulated correction clicks. Its final prediction is encoded into memory
(`tracking.encode_memory`) that later frames read. Nothing is detached: gradients flow through the memory
from frame to frame, and through the chain of corrections on a frame.

What differs from tracking is what training reads: memories stay fp32 with their graphs, a frame also reads
the object pointers of later conditioning frames, and there is no post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from model.network.sam2 import HeadOutput, ImageFeatures, SAM2Model
from model.training.batch import TrainBatch
from model.training.prompts import PromptPlan, PromptSettings, correction_click
from model.video import step, tracking


@dataclass
class FrameSteps:
    """What one frame produced at each prompting step (the first prediction, then one per correction click).

    Per step: ``multimasks`` N, M, S, S high-resolution logits (M = 3 candidates or 1), ``ious`` N, M
    predicted IoUs, ``object_scores`` N, 1 object-score logits. ``masks`` N, 1, S, S the final logits and
    ``pointer`` N, 256 the final object pointer.
    """

    multimasks: list[torch.Tensor] = field(default_factory=list)
    ious: list[torch.Tensor] = field(default_factory=list)
    object_scores: list[torch.Tensor] = field(default_factory=list)
    masks: torch.Tensor | None = None
    pointer: torch.Tensor | None = None

    def add(self, heads: HeadOutput) -> None:
        self.multimasks.append(heads.high_res_multimasks)
        self.ious.append(heads.ious)
        self.object_scores.append(heads.object_score_logits)
        self.masks, self.pointer = heads.high_res_masks, heads.obj_ptr


@dataclass
class MemoryFrame:
    """One frame's memory of the batch's objects: ``maskmem_features`` N, 64, h, w and ``obj_ptr`` N, 256."""

    maskmem_features: torch.Tensor
    obj_ptr: torch.Tensor


def encode_clips(model: SAM2Model, batch: TrainBatch, with_grad: bool = True) -> ImageFeatures:
    """Image features of every frame of every clip, clip-major (row = clip * T + frame)."""
    images = batch.images.transpose(0, 1).flatten(0, 1)  # V*T, 3, S, S
    with torch.set_grad_enabled(torch.is_grad_enabled() and with_grad):
        return model.encode_image(images)


def _rows(features: ImageFeatures, rows: torch.Tensor) -> ImageFeatures:
    """The features of the given image rows (one per object)."""
    return ImageFeatures(
        embedding=features.embedding[rows],
        high_res=[f[rows] for f in features.high_res],
        pos=[p[rows] for p in features.pos],
    )


def forward_clips(
    model: SAM2Model,
    batch: TrainBatch,
    plan: PromptPlan,
    settings: PromptSettings,
    generator: torch.Generator,
    encoder_grad: bool = True,
) -> list[FrameSteps]:
    """Track every object of ``batch`` through its clip as training does; one `FrameSteps` per frame.

    Arguments:
      plan: the clip's prompts (`model.training.prompts.plan_prompts`).
      settings: how correction clicks are drawn (``correction_clicks`` per corrected frame).
      generator: draws the correction clicks.
      encoder_grad: False computes the image features without a graph (frozen image encoder).
    """
    num_frames = batch.num_frames
    features = encode_clips(model, batch, with_grad=encoder_grad)
    conditioning: dict[int, MemoryFrame] = {}
    recent: dict[int, MemoryFrame] = {}
    memory_pos: torch.Tensor | None = None
    results: dict[int, FrameSteps] = {}
    for t in plan.processing_order(num_frames):
        frame = _rows(features, batch.image_rows(t))
        memory = tracking.ObjectMemory(conditioning, recent, memory_pos)
        truth = batch.masks[t][:, None]  # N, 1, S, S
        steps = _frame_steps(model, frame, t, num_frames, truth, plan, settings, generator, memory)
        maskmem, pos = tracking.encode_memory(
            model, frame.embedding, steps.masks, steps.object_scores[-1], binarize=False
        )
        memory_pos = pos[:1] if memory_pos is None else memory_pos
        as_conditioning = t in plan.init_frames or (
            settings.corrected_as_conditioning and t in plan.corrected_frames
        )
        (conditioning if as_conditioning else recent)[t] = MemoryFrame(maskmem, steps.pointer)
        results[t] = steps
    return [results[t] for t in range(num_frames)]


def _frame_steps(
    model: SAM2Model,
    frame: ImageFeatures,
    t: int,
    num_frames: int,
    truth: torch.Tensor,
    plan: PromptPlan,
    settings: PromptSettings,
    generator: torch.Generator,
    memory: tracking.ObjectMemory,
) -> FrameSteps:
    """One frame: its first prediction, then the correction clicks (``truth`` N, 1, S, S bool)."""
    steps = FrameSteps()
    is_init = t in plan.init_frames
    if plan.uses_mask(t):
        heads = model.mask_as_output(frame.embedding, frame.high_res, truth)
        steps.add(heads)
        return steps
    if is_init:
        conditioned = frame.embedding + model.no_mem_embed.view(1, -1, 1, 1)
    else:
        read = tracking.read_memory(model, t, memory, num_frames, reverse=False, future_conditioning=True)
        conditioned = step.condition_group(model, frame, [read], [memory])
    coords, labels = plan.clicks.get(t, (None, None))
    heads = _heads(model, conditioned, frame, coords, labels, None, is_init)
    steps.add(heads)
    if t in plan.corrected_frames:
        for _ in range(settings.correction_clicks):
            new_coords, new_labels = correction_click(truth, heads.high_res_masks > 0, settings, generator)
            coords = new_coords if coords is None else torch.cat([coords, new_coords], dim=1)
            labels = new_labels if labels is None else torch.cat([labels, new_labels], dim=1)
            heads = _heads(model, conditioned, frame, coords, labels, heads.low_res_masks, is_init)
            steps.add(heads)
    return steps


def _heads(
    model: SAM2Model,
    conditioned: torch.Tensor,
    frame: ImageFeatures,
    coords: torch.Tensor | None,
    labels: torch.Tensor | None,
    previous_logits: torch.Tensor | None,
    is_init: bool,
) -> HeadOutput:
    """The SAM heads on memory-conditioned features, with the clicks so far and the previous logits."""
    num_points = 0 if labels is None else labels.shape[1]
    return model.predict_heads(
        conditioned,
        frame.high_res,
        point_coords=coords,
        point_labels=labels,
        mask_prompt=previous_logits,
        multimask=model.use_multimask(is_init, num_points),
    )
