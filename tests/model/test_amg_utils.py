"""RLEs against pycocotools; grids, crops, boxes and scores against the official helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask
from sam2.utils import amg as official

from model.images.amg_utils import (
    MaskRecords,
    batches,
    coco_rle,
    coco_rle_to_mask,
    crop_boxes_for_layers,
    layer_point_grids,
    masks_to_boxes,
    masks_to_rle,
    near_crop_edge,
    point_grid,
    rle_area,
    rle_to_coco,
    rle_to_mask,
    stability_score,
    uncrop_boxes,
    uncrop_masks,
    uncrop_points,
    xyxy_to_xywh,
)

# pycocotools.decode trips a numpy 2 deprecation warning.
pytestmark = [
    pytest.mark.parity,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def random_masks(seed: int, n: int, h: int, w: int) -> torch.Tensor:
    """A mix of blobs, noise, empty, full and edge-touching masks."""
    gen = torch.Generator().manual_seed(seed)
    masks = torch.rand(n, h, w, generator=gen) < torch.rand(n, 1, 1, generator=gen)
    masks[0] = False
    masks[1] = True
    masks[2] = False
    masks[2, 3:9, 5:20] = True
    masks[3] = False
    masks[3, 0, 0] = masks[3, -1, -1] = True
    return masks


# ---------------------------------------------------------------------------------------------- RLE
@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (32, 48), (120, 97)])
def test_uncompressed_rle_matches_official_and_round_trips(hw: tuple[int, int]) -> None:
    masks = random_masks(0, 8, *hw)
    ours = masks_to_rle(masks)
    assert ours == official.mask_to_rle_pytorch(masks)
    for rle, mask in zip(ours, masks):
        np.testing.assert_array_equal(rle_to_mask(rle), mask.numpy())
        assert rle_area(rle) == int(mask.sum())


@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (32, 48), (120, 97), (300, 200)])
def test_coco_rle_equals_pycocotools(hw: tuple[int, int]) -> None:
    masks = random_masks(1, 8, *hw)
    # Large runs exercise multi-group counts and negative differences.
    masks[4] = False
    masks[4, : hw[0] // 2] = True
    for mask in masks:
        mask_np = mask.numpy()
        ours = coco_rle(mask_np)
        ref = coco_mask.encode(np.asfortranarray(mask_np.astype(np.uint8)))
        assert ours["size"] == list(ref["size"])
        assert ours["counts"] == ref["counts"].decode("ascii")
        np.testing.assert_array_equal(coco_mask.decode(ours).astype(bool), mask_np)
        np.testing.assert_array_equal(coco_rle_to_mask(ours), mask_np)
        np.testing.assert_array_equal(coco_rle_to_mask(ref), mask_np)
        assert coco_rle(mask) == ours  # tensors are accepted too


def test_rle_to_coco_matches_official_coco_encoder() -> None:
    for rle in masks_to_rle(random_masks(2, 6, 64, 40)):
        assert rle_to_coco(rle) == official.coco_encode_rle(rle)


# ------------------------------------------------------------------------------------------ grids and crops
@pytest.mark.parametrize("n", [1, 2, 5, 32])
def test_point_grid_equals_official(n: int) -> None:
    np.testing.assert_array_equal(point_grid(n), official.build_point_grid(n))


@pytest.mark.parametrize(("n", "layers", "scale"), [(32, 0, 1), (16, 2, 2), (8, 3, 1), (10, 2, 3)])
def test_layer_point_grids_equal_official(n: int, layers: int, scale: int) -> None:
    ours = layer_point_grids(n, layers, scale)
    ref = official.build_all_layer_point_grids(n, layers, scale)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("hw", [(320, 480), (480, 320), (1024, 1024), (333, 517)])
@pytest.mark.parametrize("layers", [0, 1, 2])
@pytest.mark.parametrize("ratio", [512 / 1500, 0.0, 0.5])
def test_crop_boxes_equal_official(hw: tuple[int, int], layers: int, ratio: float) -> None:
    assert crop_boxes_for_layers(hw, layers, ratio) == official.generate_crop_boxes(hw, layers, ratio)


def test_uncrop_helpers_equal_official() -> None:
    crop = [30, 12, 130, 92]
    boxes = torch.randint(0, 80, (5, 4))
    points = torch.rand(5, 2) * 80
    masks = random_masks(3, 5, 80, 100)
    assert torch.equal(uncrop_boxes(boxes, crop), official.uncrop_boxes_xyxy(boxes, crop))
    assert torch.equal(uncrop_points(points, crop), official.uncrop_points(points, crop))
    assert torch.equal(uncrop_masks(masks, crop, 120, 200), official.uncrop_masks(masks, crop, 120, 200))
    assert uncrop_masks(masks, [0, 0, 100, 80], 80, 100) is masks


def test_near_crop_edge_equals_official() -> None:
    gen = torch.Generator().manual_seed(4)
    boxes = torch.randint(0, 200, (200, 4), generator=gen)
    for crop in ([0, 0, 300, 200], [100, 0, 300, 120], [50, 40, 250, 160]):
        ours = near_crop_edge(boxes, crop, [0, 0, 300, 200])
        assert torch.equal(ours, official.is_box_near_crop_edge(boxes, crop, [0, 0, 300, 200]))
    assert ours.any() and not ours.all()


# ----------------------------------------------------------------------------------------- boxes and scores
def test_masks_to_boxes_equals_official() -> None:
    masks = random_masks(5, 12, 40, 60)
    ours = masks_to_boxes(masks)
    assert ours.dtype == torch.int64
    assert torch.equal(ours, official.batched_mask_to_box(masks))
    assert torch.equal(ours[0], torch.zeros(4, dtype=torch.int64))  # empty mask
    assert ours[2].tolist() == [5, 3, 19, 8]
    nested = masks.reshape(3, 4, 40, 60)
    assert torch.equal(masks_to_boxes(nested), official.batched_mask_to_box(nested))
    assert masks_to_boxes(torch.zeros(0, 5, 5, dtype=torch.bool)).shape == (0, 4)


def test_xyxy_to_xywh() -> None:
    box = torch.tensor([3, 4, 10, 20])
    assert xyxy_to_xywh(box).tolist() == [3, 4, 7, 16]
    assert box.tolist() == [3, 4, 10, 20]  # not modified
    np.testing.assert_array_equal(xyxy_to_xywh(np.array([[1.0, 2, 5, 9]])), [[1, 2, 4, 7]])


def test_stability_score_equals_official() -> None:
    logits = torch.randn(10, 64, 48) * 4
    logits[0] = -20  # empty loose mask: NaN on both sides
    for thr, offset in [(0.0, 1.0), (0.5, 0.25)]:
        ours = stability_score(logits, thr, offset)
        ref = official.calculate_stability_score(logits, thr, offset)
        torch.testing.assert_close(ours, ref, equal_nan=True)
    assert torch.isnan(ours[0])


# ---------------------------------------------------------------------------------------------- records
def test_records_filter_cat_and_numpy() -> None:
    records = MaskRecords(a=torch.arange(5), b=np.arange(5) * 10, c=list("vwxyz"))
    records.filter(torch.tensor([True, False, True, True, False]))
    assert records["a"].tolist() == [0, 2, 3] and records["b"].tolist() == [0, 20, 30]
    assert records["c"] == ["v", "x", "y"]
    records.filter(torch.tensor([2, 0]))  # index order is kept (NMS returns indices by score)
    assert records["a"].tolist() == [3, 0] and records["c"] == ["y", "v"]
    records.cat(MaskRecords(a=torch.tensor([7]), b=np.array([70]), c=["q"], d=torch.tensor([1.5])))
    assert records["a"].tolist() == [3, 0, 7] and records["c"] == ["y", "v", "q"] and len(records) == 3
    records.to_numpy()
    assert isinstance(records["a"], np.ndarray) and records["a"].dtype == np.float32
    del records["d"]
    assert "d" not in records
    with pytest.raises(TypeError):
        records["bad"] = 3


def test_batches_cover_all_rows() -> None:
    out = list(batches(4, list(range(10)), np.arange(10)))
    assert [len(a) for a, _ in out] == [4, 4, 2]
    assert out[-1][1].tolist() == [8, 9]
    with pytest.raises(ValueError):
        list(batches(2, [1, 2], [1]))
