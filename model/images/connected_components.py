"""8-connected component labelling in plain torch, and the small-region clean-ups built on it.

The official project computes components with a compiled CUDA extension; the PyPI package ships without it,
so there its hole filling silently does nothing. This version runs on any device torch supports.

Algorithm (a data-parallel union-find): every foreground pixel holds a pointer to a pixel of its component
with a flat index no larger than its own. Each round
  1. takes the minimum pointer over the 3x3 neighbourhood (8-connectivity),
  2. hooks both the pixel and its current root onto that minimum (``scatter_reduce`` with ``amin``),
  3. compresses every chain to its root by pointer jumping.
Pointers only ever decrease, so the loop terminates; at the fixed point neighbouring foreground pixels share
a root, which is the smallest flat index of the component. Pointer jumping lets labels travel along long
snakes in a logarithmic rather than linear number of rounds.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _neighbourhood_min(labels: Tensor, fill: int) -> Tensor:
    """Minimum over each 3x3 window, outside the image counting as ``fill``. labels: N, H, W."""
    n, h, w = labels.shape
    # A 3x3 box minimum is separable: rows first, then columns.
    padded = labels.new_full((n, h + 2, w), fill)
    padded[:, 1:-1] = labels
    rows = torch.minimum(torch.minimum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    padded = labels.new_full((n, h, w + 2), fill)
    padded[:, :, 1:-1] = rows
    return torch.minimum(torch.minimum(padded[:, :, :-2], padded[:, :, 1:-1]), padded[:, :, 2:])


def _compress(parent: Tensor, fg_idx: Tensor) -> Tensor:
    """Pointer jumping until every foreground pixel points at its root; returns the roots (F,).

    Pointers always target foreground pixels, so background entries never need updating.
    """
    current = parent[fg_idx]
    while True:
        grand = parent[current]
        if torch.equal(grand, current):
            return current
        parent[fg_idx] = grand
        current = grand


@torch.no_grad()
def connected_components(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Label the 8-connected foreground components of a batch of binary masks.

    Same contract as the official CUDA ``get_connected_components``.

    Arguments:
      mask: B,1,H,W bool or integer tensor; non-zero is foreground.

    Returns:
      labels: B,1,H,W int32. 0 on background; a foreground pixel gets 1 + the row-major index (within its
        image) of the first pixel of its component, so labels are positive and unique per image but not
        consecutive.
      areas: B,1,H,W int32, the pixel count of the pixel's component, 0 on background.
    """
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"expected a B,1,H,W mask, got shape {tuple(mask.shape)}")
    b, _, h, w = mask.shape
    fg = mask.reshape(b, h, w) != 0  # B, H, W
    total = b * h * w
    if total == 0:
        zeros = torch.zeros(mask.shape, dtype=torch.int32, device=mask.device)
        return zeros, zeros.clone()

    flat_fg = fg.reshape(-1)
    fg_idx = flat_fg.nonzero().squeeze(1)  # F
    # Global flat indices keep images apart: a pointer never leaves its own image.
    parent = torch.arange(total, device=mask.device)
    root = fg_idx
    no_label = total  # larger than any index, so background never wins a minimum
    while True:
        labels = torch.full((total,), no_label, dtype=parent.dtype, device=mask.device)
        labels[fg_idx] = root
        near_min = _neighbourhood_min(labels.view(b, h, w), no_label).reshape(-1)[fg_idx]  # F
        parent.scatter_reduce_(0, root, near_min, reduce="amin")
        parent.scatter_reduce_(0, fg_idx, near_min, reduce="amin")
        new_root = _compress(parent, fg_idx)
        if torch.equal(new_root, root):
            break
        root = new_root

    sizes = torch.bincount(root, minlength=total)
    offset = fg_idx - fg_idx % (h * w)  # start of each pixel's image
    labels = torch.zeros(total, dtype=torch.int32, device=mask.device)
    areas = torch.zeros(total, dtype=torch.int32, device=mask.device)
    labels[fg_idx] = (root - offset + 1).to(torch.int32)
    areas[fg_idx] = sizes[root].to(torch.int32)
    return labels.view(b, 1, h, w), areas.view(b, 1, h, w)


def _small_components(region: Tensor, max_area: float) -> Tensor:
    """Pixels of ``region`` (..., H, W bool) whose 8-connected component has at most ``max_area`` pixels."""
    flat = region.reshape(-1, 1, *region.shape[-2:])
    labels, areas = connected_components(flat)
    return ((labels > 0) & (areas <= max_area)).view(region.shape)


@torch.no_grad()
def remove_small_regions(
    logits: Tensor, threshold: float, max_hole_area: float, max_sprinkle_area: float
) -> Tensor:
    """The image predictor's clean-up of low-resolution mask logits (official semantics).

    Both passes look at the input logits, so filling a hole never creates a new sprinkle or vice versa. Every
    background component counts as a hole, including those touching the image border.

    Arguments:
      logits: ..., H, W mask logits (the predictor passes B,C,256,256).
      threshold: the binarisation threshold; background is ``logits <= threshold``.
      max_hole_area: background components of at most this many pixels become ``threshold + 10``;
        0 disables the pass.
      max_sprinkle_area: foreground components of at most this many pixels become ``threshold - 10``;
        0 disables the pass.

    Returns:
      logits of the same shape and dtype with the small regions overwritten.
    """
    out = logits
    if max_hole_area > 0:
        holes = _small_components(logits <= threshold, max_hole_area)
        out = torch.where(holes, torch.as_tensor(threshold + 10.0, dtype=out.dtype), out)
    if max_sprinkle_area > 0:
        sprinkles = _small_components(logits > threshold, max_sprinkle_area)
        out = torch.where(sprinkles, torch.as_tensor(threshold - 10.0, dtype=out.dtype), out)
    return out


@torch.no_grad()
def fill_small_holes(logits: Tensor, max_area: float, fill_value: float = 0.1) -> Tensor:
    """The video predictor's hole filling: background (``logits <= 0``) components of at most ``max_area``
    pixels get the small positive score ``fill_value``. ``max_area <= 0`` returns the input unchanged.

    Arguments:
      logits: ..., H, W mask logits (the video predictor passes N,1,256,256).
    """
    if max_area <= 0:
        return logits
    holes = _small_components(logits <= 0, max_area)
    return torch.where(holes, torch.as_tensor(fill_value, dtype=logits.dtype), logits)
