"""Helpers of the automatic mask generator: a column store for candidate masks, point grids and image crops,
box geometry, the stability score, and the run-length encoding of masks on their device (the codec itself
is ``model.images.rle``).

Masks are ``..., H, W`` bool tensors; boxes are XYXY with inclusive right/bottom pixel indices unless said
otherwise. The RLEs follow COCO: runs over the column-major (Fortran order) flattening, starting with a run of
zeros (possibly empty).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from model.images import rle

Column = Tensor | np.ndarray | list


class MaskRecords:
    """Parallel columns describing a batch of candidate masks (one row per mask).

    Columns are tensors, numpy arrays or lists, all indexed by the same row. Supports concatenation of another
    record set, row selection with a boolean mask or index tensor, and conversion of tensors to numpy.
    """

    def __init__(self, **columns: Column) -> None:
        self._columns: dict[str, Column] = {}
        for name, value in columns.items():
            self[name] = value

    def __setitem__(self, name: str, value: Column) -> None:
        if not isinstance(value, (Tensor, np.ndarray, list)):
            kind = type(value).__name__
            raise TypeError(f"column {name!r} must be a tensor, numpy array or list, got {kind}")
        self._columns[name] = value

    def __getitem__(self, name: str) -> Column:
        return self._columns[name]

    def __delitem__(self, name: str) -> None:
        del self._columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self._columns

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def items(self):
        return self._columns.items()

    def filter(self, keep: Tensor) -> None:
        """Keep the rows selected by ``keep`` (N bool, or indices in the order wanted), in place."""
        keep = torch.as_tensor(keep)
        keep_cpu = keep.cpu()
        for name, value in self._columns.items():
            if isinstance(value, Tensor):
                self._columns[name] = value[keep.to(value.device)]
            elif isinstance(value, np.ndarray):
                self._columns[name] = value[keep_cpu.numpy()]
            elif keep_cpu.dtype == torch.bool:
                self._columns[name] = [v for v, k in zip(value, keep_cpu.tolist()) if k]
            else:
                self._columns[name] = [value[i] for i in keep_cpu.tolist()]

    def cat(self, other: MaskRecords) -> None:
        """Append the rows of ``other`` (same columns), in place."""
        for name, value in other.items():
            if name not in self._columns:
                self._columns[name] = value.clone() if isinstance(value, Tensor) else _copy(value)
            elif isinstance(value, Tensor):
                self._columns[name] = torch.cat([self._columns[name], value], dim=0)
            elif isinstance(value, np.ndarray):
                self._columns[name] = np.concatenate([self._columns[name], value], axis=0)
            else:
                self._columns[name] = self._columns[name] + list(value)

    def to_numpy(self) -> None:
        """Tensors become float numpy arrays on the CPU (as the official generator leaves them), in place."""
        for name, value in self._columns.items():
            if isinstance(value, Tensor):
                self._columns[name] = value.detach().float().cpu().numpy()


def _copy(value: np.ndarray | list) -> np.ndarray | list:
    return value.copy() if isinstance(value, np.ndarray) else list(value)


def batches(batch_size: int, *columns: Sequence) -> Iterator[list]:
    """Yield aligned slices of ``batch_size`` rows of each sequence (the last batch may be shorter)."""
    if not columns or any(len(c) != len(columns[0]) for c in columns):
        raise ValueError("batches needs at least one sequence, all of the same length")
    for start in range(0, len(columns[0]), batch_size):
        yield [c[start : start + batch_size] for c in columns]


# ---------------------------------------------------------------------------------------------- point grids
def point_grid(n_per_side: int) -> np.ndarray:
    """n_per_side**2, 2 (x, y) points in [0, 1]: centres of an n x n grid of cells, x varying fastest."""
    half_cell = 1 / (2 * n_per_side)
    centres = np.linspace(half_cell, 1 - half_cell, n_per_side)
    xs, ys = np.meshgrid(centres, centres, indexing="xy")
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def layer_point_grids(n_per_side: int, n_layers: int, downscale: int) -> list[np.ndarray]:
    """One grid per crop layer (layer 0 = the whole image); layer i has n_per_side / downscale**i per side."""
    return [point_grid(int(n_per_side / downscale**i)) for i in range(n_layers + 1)]


# ---------------------------------------------------------------------------------------------- crops
def crop_boxes_for_layers(
    image_hw: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """XYXY crop boxes: the whole image, then for layer i (1-based) a 2**i x 2**i grid of overlapping crops.

    Returns:
      boxes: list of [x0, y0, x1, y1] (exclusive x1, y1), in the order layer, then x, then y.
      layers: the layer index of each box.
    """
    h, w = image_hw
    boxes, layers = [[0, 0, w, h]], [0]
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        # The overlap is a fraction of the short side, shrinking with the number of crops.
        overlap = int(overlap_ratio * min(h, w) * (2 / per_side))
        crop_w = math.ceil((overlap * (per_side - 1) + w) / per_side)
        crop_h = math.ceil((overlap * (per_side - 1) + h) / per_side)
        for i in range(per_side):
            x0 = int((crop_w - overlap) * i)
            for j in range(per_side):
                y0 = int((crop_h - overlap) * j)
                boxes.append([x0, y0, min(x0 + crop_w, w), min(y0 + crop_h, h)])
                layers.append(layer)
    return boxes, layers


def uncrop_boxes(boxes: Tensor, crop_box: Sequence[int]) -> Tensor:
    """XYXY boxes ``..., 4`` in a crop -> the full image."""
    x0, y0 = crop_box[0], crop_box[1]
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def uncrop_points(points: Tensor, crop_box: Sequence[int]) -> Tensor:
    """Points ``..., 2`` (x, y) in a crop -> the full image."""
    return points + torch.tensor([crop_box[0], crop_box[1]], device=points.device)


def uncrop_masks(masks: Tensor, crop_box: Sequence[int], image_h: int, image_w: int) -> Tensor:
    """Masks ``..., h, w`` of a crop -> ``..., image_h, image_w``, zero outside the crop."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, image_w, image_h):
        return masks
    pad = (x0, image_w - x1, y0, image_h - y1)  # left, right, top, bottom
    return torch.nn.functional.pad(masks, pad, value=0)


def near_crop_edge(
    boxes: Tensor, crop_box: Sequence[int], image_box: Sequence[int], atol: float = 20.0
) -> Tensor:
    """N bool: the box (XYXY, crop frame) lies within ``atol`` of a crop border that is not an image border.

    Such masks are probably cut by the crop, so the generator drops them.
    """
    crop = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    image = torch.as_tensor(image_box, dtype=torch.float, device=boxes.device)
    boxes = uncrop_boxes(boxes, crop_box).float()
    at_crop = torch.isclose(boxes, crop[None], atol=atol, rtol=0)
    at_image = torch.isclose(boxes, image[None], atol=atol, rtol=0)
    return (at_crop & ~at_image).any(dim=1)


# ------------------------------------------------------------------------------------------ boxes and scores
def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight XYXY boxes (inclusive pixel indices, int64) of bool masks ``..., H, W`` -> ``..., 4``.

    An empty mask gets [0, 0, 0, 0].
    """
    h, w = masks.shape[-2:]
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, dtype=torch.int64, device=masks.device)
    rows = masks.any(dim=-1)  # ..., H
    cols = masks.any(dim=-2)  # ..., W
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    # Missing rows/columns are pushed past the far side for the minimum and to -1 for the maximum.
    top = torch.where(rows, ys, h).amin(dim=-1)
    bottom = torch.where(rows, ys, -1).amax(dim=-1)
    left = torch.where(cols, xs, w).amin(dim=-1)
    right = torch.where(cols, xs, -1).amax(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    return boxes * rows.any(dim=-1, keepdim=True)


def xyxy_to_xywh(box: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """One box or a batch ``..., 4``: XYXY -> XYWH (a copy)."""
    out = box.clone() if isinstance(box, Tensor) else np.array(box, copy=True)
    out[..., 2] = box[..., 2] - box[..., 0]
    out[..., 3] = box[..., 3] - box[..., 1]
    return out


def stability_score(logits: Tensor, mask_threshold: float, offset: float) -> Tensor:
    """IoU between the masks thresholded at ``mask_threshold + offset`` and at ``mask_threshold - offset``.

    The first mask is contained in the second, so the IoU is the ratio of their areas. logits: ..., H, W.
    An empty loose mask gives NaN, which fails every threshold.
    """
    tight = (logits > mask_threshold + offset).sum(dim=(-2, -1), dtype=torch.int32)
    loose = (logits > mask_threshold - offset).sum(dim=(-2, -1), dtype=torch.int32)
    return tight / loose


# ---------------------------------------------------------------------------------------------- RLE
def masks_to_rle(masks: Tensor) -> list[dict[str, Any]]:
    """Uncompressed COCO RLEs ``{"size": [h, w], "counts": [int, ...]}`` of bool masks ``B, H, W``.

    The changes are found on the masks' device, so only their positions come to the CPU.
    """
    b, h, w = masks.shape
    flat = masks.transpose(1, 2).reshape(b, h * w)  # column-major order
    if h * w == 0:
        return [{"size": [h, w], "counts": [0]} for _ in range(b)]
    changes = (flat[:, 1:] != flat[:, :-1]).nonzero().cpu().numpy()  # K, 2 (mask, position)
    starts_on = flat[:, 0].cpu().numpy()
    per_mask = np.bincount(changes[:, 0], minlength=b)
    bounds = np.split(changes[:, 1] + 1, np.cumsum(per_mask)[:-1])
    return [
        {"size": [h, w], "counts": rle.runs_from_changes(bounds[i], h * w, bool(starts_on[i]))}
        for i in range(b)
    ]


def coco_rle(mask: Tensor | np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of one H, W binary mask, as ``pycocotools.mask.encode`` writes it (str counts)."""
    return rle.coco_rle(mask.bool().cpu().numpy() if isinstance(mask, Tensor) else mask)


# The generator's names for the codec's functions (``model.images.rle``).
rle_to_mask = rle.coco_rle_to_mask  # reads the list counts of ``masks_to_rle``
rle_area = rle.rle_area
rle_to_coco = rle.compress_rle
coco_rle_to_mask = rle.coco_rle_to_mask
