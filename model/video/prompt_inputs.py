"""A video predictor's prompts as the network takes them: clicks and a box as one list of points on the CPU,
a mask at the network's input size. Bad arguments raise ``ValueError`` saying what to pass instead."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BOX_LABELS = (2, 3)
"""A box goes to the prompt encoder as two points (top-left, bottom-right) with these labels."""


def cpu_tensor(values, dtype: torch.dtype) -> torch.Tensor:
    """A list, array or tensor as a CPU tensor of ``dtype``."""
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", dtype)
    return torch.as_tensor(np.asarray(values), dtype=dtype)


def point_prompt(points, labels, box, clear_old_points: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Clicks and an optional box as one prompt, in the caller's coordinates.

    Arguments:
      points, labels: N, 2 (x, y) and N ints (1 positive, 0 negative), both or neither.
      box: x0, y0, x1, y1 or None; it comes before the clicks, so only with ``clear_old_points``.
    Returns:
      ``(points, labels)``: 1, N', 2 float32 and 1, N' int32 on the CPU, the box's two corners first.
    """
    if (points is None) != (labels is None):
        raise ValueError("points and labels must be provided together")
    if points is None and box is None:
        raise ValueError("at least one of points or box must be provided as input")
    points = torch.zeros(0, 2) if points is None else cpu_tensor(points, torch.float32)
    labels = torch.zeros(0, dtype=torch.int32) if labels is None else cpu_tensor(labels, torch.int32)
    if points.dim() == 2:
        points = points.unsqueeze(0)
    if labels.dim() == 1:
        labels = labels.unsqueeze(0)
    if points.shape[-1] != 2 or points.shape[:2] != labels.shape[:2]:
        raise ValueError(
            f"points must be N x 2 with one label each; got points {tuple(points.shape)}, "
            f"labels {tuple(labels.shape)}"
        )
    if box is not None:
        if not clear_old_points:
            raise ValueError(
                "cannot add a box without clearing old points: a box must come before any click "
                "(use clear_old_points=True)"
            )
        box = cpu_tensor(box, torch.float32).reshape(1, 2, 2)
        points = torch.cat([box, points], dim=1)
        labels = torch.cat([torch.tensor([BOX_LABELS], dtype=torch.int32), labels], dim=1)
    return points, labels


def network_points(
    points: torch.Tensor,
    labels: torch.Tensor,
    video_size: tuple[int, int] | None,
    image_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`point_prompt`'s points in network input pixels, on ``device`` with their labels.

    ``video_size``: (width, height) of the video for points in its pixels; None for points in [0, 1].
    """
    if video_size is not None:
        points = points / torch.tensor(video_size)
    points = (points * image_size).to(device)
    return points, labels.to(device)


def mask_prompt(mask, image_size: int, device: torch.device) -> torch.Tensor:
    """A 2-D mask (bool array or tensor, any size) as the network's 1, 1, S, S float mask input on ``device``:
    resized with antialiased bilinear interpolation, then thresholded at 0.5."""
    mask = cpu_tensor(mask, torch.bool)
    if mask.dim() != 2:
        raise ValueError(f"the mask must be 2-D (H, W), got shape {tuple(mask.shape)}")
    mask_input = mask[None, None].float().to(device)
    if tuple(mask.shape) != (image_size, image_size):
        mask_input = F.interpolate(
            mask_input, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
        mask_input = (mask_input >= 0.5).float()
    return mask_input
