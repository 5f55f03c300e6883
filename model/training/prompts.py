"""Prompt simulation for training: the clicks, boxes and masks a user would give, drawn from the ground truth.

What a clip gets (the official training recipe, every choice from one seeded ``torch.Generator``):
  * with probability ``prob_points`` the initial prompts are clicks, otherwise the ground-truth masks;
  * 1 or 2 initial conditioning frames (frame 0, plus a random other frame), prompted first;
  * with clicks, each initial frame gets a noisy box (probability ``prob_box``) or one click sampled
    uniformly from the object; 1 or 2 frames (the initial ones, then a random other one) then get
    ``correction_clicks`` more clicks, each sampled from where the prediction is wrong (`error_clicks`);
    a corrected frame becomes a conditioning frame;
  * a 1-frame clip (an image) always gets clicks.

The generator may live on the GPU (training draws there, where the masks are) or the CPU.
Clicks are ``N, P, 2`` (x, y) pixel coordinates of the network input with ``N, P`` int32 labels (1 positive,
0 negative, 2 and 3 the box corners), as `SAM2Model.predict_heads` takes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

BOX_NOISE, BOX_NOISE_BOUND = 0.1, 20.0
"""A box corner moves by up to 10 % of the box side, at most 20 pixels (as SAM was trained)."""


@dataclass(frozen=True)
class PromptSettings:
    """How prompts are simulated; the defaults are the official SAM 2.1 fine-tuning recipe."""

    prob_points: float = 0.5  # clicks or a box instead of the ground-truth mask on the initial frames
    prob_box: float = 0.5  # a box instead of one click, when clicks are used
    max_init_frames: int = 2  # initial conditioning frames: 1 .. this many (random)
    max_corrected_frames: int = 2  # frames that get correction clicks: initial ones .. this many (random)
    correction_clicks: int = 7  # correction clicks per corrected frame
    prob_click_from_truth: float = 0.1  # a correction click from the whole object, not from the errors
    corrected_as_conditioning: bool = True  # a corrected frame becomes a conditioning frame


@dataclass
class PromptPlan:
    """The prompts of one clip (all its objects share the plan's frames; clicks differ per object).

    ``init_frames``: the initial conditioning frames, processed first in this order;
    ``clicks``: frame -> (coords N, P, 2 float, labels N, P int32), on initial frames when clicks are used;
    ``corrected_frames``: frames that get correction clicks; ``kinds``: frame -> "mask", "box" or "click".
    """

    init_frames: list[int]
    corrected_frames: list[int]
    clicks: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)

    def processing_order(self, num_frames: int) -> list[int]:
        """The initial frames, then every other frame in time order."""
        return self.init_frames + [t for t in range(num_frames) if t not in self.init_frames]

    def uses_mask(self, frame: int) -> bool:
        return self.kinds.get(frame) == "mask"


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, device=generator.device))


def _integer(low: int, high: int, generator: torch.Generator) -> int:
    """A random integer in low .. high, both included."""
    return int(torch.randint(low, high + 1, (), generator=generator, device=generator.device))


def _choose(options: list[int], count: int, generator: torch.Generator) -> list[int]:
    """``count`` distinct items of ``options`` in random order."""
    order = torch.randperm(len(options), generator=generator, device=generator.device)[:count]
    return [options[i] for i in order.tolist()]


def plan_prompts(masks: torch.Tensor, settings: PromptSettings, generator: torch.Generator) -> PromptPlan:
    """Draw the prompts of a clip from its ground truth ``masks`` (T, N, S, S bool)."""
    num_frames = masks.shape[0]
    prob_points, max_init, max_corrected = (
        settings.prob_points,
        settings.max_init_frames,
        settings.max_corrected_frames,
    )
    if num_frames == 1:
        prob_points, max_init, max_corrected = 1.0, 1, 1
    max_init = min(max_init, num_frames)
    use_clicks = _uniform(generator) < prob_points
    num_init = _integer(1, max_init, generator) if max_init > 1 else 1
    num_corrected = max(max_corrected, num_init)
    if use_clicks and max_corrected > num_init:
        num_corrected = _integer(num_init, max_corrected, generator)
    init_frames = [0] + _choose(list(range(1, num_frames)), num_init - 1, generator)
    plan = PromptPlan(init_frames=init_frames, corrected_frames=[])
    for t in init_frames:
        truth = masks[t][:, None]  # N, 1, S, S
        if not use_clicks:
            plan.kinds[t] = "mask"
        elif _uniform(generator) < settings.prob_box:
            plan.kinds[t], plan.clicks[t] = "box", noisy_box(truth, generator)
        else:
            plan.kinds[t], plan.clicks[t] = "click", error_clicks(truth, None, generator)
    if use_clicks:
        others = [t for t in range(num_frames) if t not in init_frames]
        extra = min(num_corrected - num_init, len(others))
        plan.corrected_frames = init_frames + _choose(others, extra, generator)
    return plan


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes of ``N, 1, H, W`` bool masks: N, 1, 4 (x0, y0, x1, y1) in pixels, inclusive.

    An empty mask gives the inverted box (W, H, -1, -1), which the noise and clamping of `noisy_box` turn
    into a box on the image border, as in the official training."""
    _, _, height, width = masks.shape
    xs = torch.arange(width, device=masks.device).view(1, 1, 1, width)
    ys = torch.arange(height, device=masks.device).view(1, 1, height, 1)
    x0 = torch.where(masks, xs, width).flatten(-2).min(dim=-1).values
    x1 = torch.where(masks, xs, -1).flatten(-2).max(dim=-1).values
    y0 = torch.where(masks, ys, height).flatten(-2).min(dim=-1).values
    y1 = torch.where(masks, ys, -1).flatten(-2).max(dim=-1).values
    return torch.stack((x0, y0, x1, y1), dim=-1)  # N, 1, 4


def noisy_box(masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A box around each ``N, 1, H, W`` mask with corners moved at random: coords N, 2, 2 and labels 2, 3."""
    count, _, height, width = masks.shape
    boxes = mask_boxes(masks).float()
    box_w, box_h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    bound = torch.tensor(BOX_NOISE_BOUND, device=masks.device)
    max_dx, max_dy = torch.minimum(box_w * BOX_NOISE, bound), torch.minimum(box_h * BOX_NOISE, bound)
    noise = 2 * torch.rand(count, 1, 4, generator=generator, device=generator.device).to(masks.device) - 1
    boxes = boxes + noise * torch.stack((max_dx, max_dy, max_dx, max_dy), dim=-1)
    limits = torch.tensor([width, height, width, height], device=masks.device) - 1
    boxes = torch.minimum(torch.maximum(boxes, torch.zeros_like(limits)), limits)
    labels = torch.tensor([2, 3], dtype=torch.int32, device=masks.device).repeat(count, 1)
    return boxes.reshape(count, 2, 2), labels


def error_clicks(
    truth: torch.Tensor, predicted: torch.Tensor | None, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One click per object where ``predicted`` is wrong (both ``N, 1, H, W`` bool; None: nothing predicted).

    The click is uniform over the false positives (a negative click) and false negatives (a positive one)
    together; where the prediction is right everywhere, a negative click on the background.
    Returns coords N, 1, 2 (x, y) float and labels N, 1 int32.
    """
    if predicted is None:
        predicted = torch.zeros_like(truth)
    count, _, height, width = truth.shape
    false_pos, false_neg = ~truth & predicted, truth & ~predicted
    all_right = (truth == predicted).flatten(2).all(dim=2)[..., None, None]  # N, 1, 1, 1
    noise = torch.rand(count, 1, height, width, 2, generator=generator, device=generator.device)
    noise = noise.to(truth.device)  # a no-op when the generator is on the masks' device, as in training
    noise[..., 0] *= false_pos | (all_right & ~truth)
    noise[..., 1] *= false_neg
    index = noise.flatten(2).argmax(dim=2)  # N, 1: pixel * 2 + (1 for a positive click)
    labels = (index % 2).to(torch.int32)
    pixel = index // 2
    coords = torch.stack([pixel % width, pixel // width], dim=2).float()
    return coords, labels


def correction_click(
    truth: torch.Tensor, predicted: torch.Tensor, settings: PromptSettings, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next correction click (`error_clicks`), now and then drawn from the whole object instead."""
    from_truth = settings.prob_click_from_truth > 0 and _uniform(generator) < settings.prob_click_from_truth
    return error_clicks(truth, None if from_truth else predicted, generator)
