"""The two measures of semi-supervised video object segmentation, as DAVIS 2017 and SA-V define them.

* **J, region similarity**: the intersection over union of the predicted and the true mask of one object
  on one frame; 1 when both are empty.
* **F, boundary accuracy**: the F-measure of the predicted boundary against the true boundary, a boundary
  pixel counting as matched when a boundary pixel of the other mask lies within a disk of radius
  ``ceil(0.008 * image diagonal)`` pixels.

Boundaries follow the DAVIS definition (`boundary_map`): a pixel is on the boundary of a mask when it differs
from its right, lower or lower-right neighbour. Pixels of the last row are compared with their right neighbour
only, pixels of the last column with their lower neighbour only, and the bottom-right pixel is never on the
boundary, so the image frame itself is not a boundary: a mask that fills the whole image has none.
Both measures are fractions in [0, 1] here; the evaluator reports them in percent, as the official tables do.
"""

from __future__ import annotations

import math

import numpy as np

BOUNDARY_TOLERANCE = 0.008  # of the image diagonal


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """J of one object on one frame: ``|pred & gt| / |pred | gt|``, 1.0 when both masks are empty."""
    pred, gt = _as_bool(pred, gt)
    union = int(np.count_nonzero(pred | gt))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pred & gt)) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The one-pixel DAVIS boundary of a ``H, W`` mask (bool, same shape); see the module docstring."""
    mask = np.asarray(mask, dtype=bool)
    right = np.zeros_like(mask)
    below = np.zeros_like(mask)
    below_right = np.zeros_like(mask)
    right[:, :-1] = mask[:, 1:]
    below[:-1, :] = mask[1:, :]
    below_right[:-1, :-1] = mask[1:, 1:]
    edge = (mask ^ right) | (mask ^ below) | (mask ^ below_right)
    edge[-1, :] = mask[-1, :] ^ right[-1, :]
    edge[:, -1] = mask[:, -1] ^ below[:, -1]
    edge[-1, -1] = False
    return edge


def tolerance_radius(height: int, width: int, tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """The matching radius in pixels: ``ceil(tolerance * sqrt(H^2 + W^2))``."""
    return math.ceil(tolerance * math.hypot(height, width))


def dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of a ``H, W`` mask by the disk ``{(dy, dx): dy^2 + dx^2 <= radius^2}``; pixels outside
    the image contribute nothing.

    Done row offset by row offset: each row of the disk is a horizontal run, applied with a running sum.
    """
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    if radius <= 0 or not mask.any():
        return mask.copy()
    # Horizontal runs: runs[h][y, x] = any(mask[y, x - h .. x + h]).
    padded = np.zeros((height, width + 2 * radius + 1), np.int32)
    padded[:, radius + 1 : radius + 1 + width] = mask
    sums = np.cumsum(padded, axis=1)  # sums[:, k] = mask[:, :k - radius] counted
    runs: dict[int, np.ndarray] = {}
    out = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        half = math.isqrt(radius * radius - dy * dy)
        if half not in runs:
            lo = radius - half
            hi = radius + half + 1
            runs[half] = (sums[:, hi : hi + width] - sums[:, lo : lo + width]) > 0
        run = runs[half]
        # out[y] |= run[y + dy]
        if dy >= 0:
            out[: height - dy] |= run[dy:]
        else:
            out[-dy:] |= run[: height + dy]
    return out


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """F of one object on one frame.

    Precision: the share of predicted boundary pixels within the tolerance of the true boundary; recall: the
    share of true boundary pixels within the tolerance of the predicted one. Where a boundary is empty: both
    empty gives 1; an empty predicted boundary against a true one gives precision 1, recall 0 (F = 0); a
    predicted boundary against none gives precision 0, recall 1 (F = 0).
    """
    pred, gt = _as_bool(pred, gt)
    radius = tolerance_radius(*gt.shape, tolerance)
    pred_edge = boundary_map(pred)
    gt_edge = boundary_map(gt)
    n_pred = int(np.count_nonzero(pred_edge))
    n_gt = int(np.count_nonzero(gt_edge))
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    # Only the window around both boundaries matters (the dilations reach ``radius`` beyond them).
    window = _window(pred_edge | gt_edge, radius)
    pred_edge, gt_edge = pred_edge[window], gt_edge[window]
    precision = np.count_nonzero(pred_edge & dilate_disk(gt_edge, radius)) / n_pred
    recall = np.count_nonzero(gt_edge & dilate_disk(pred_edge, radius)) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def _window(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The bounding box of a non-empty mask grown by ``margin`` pixels, clipped to the image."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, height)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, width)),
    )


def _as_bool(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"masks must be two H, W arrays of one shape, got {pred.shape} and {gt.shape}")
    return pred, gt
