"""Connected components and small-region clean-ups, checked against scipy.ndimage (independent labeller)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from model.images.connected_components import connected_components, fill_small_holes, remove_small_regions

EIGHT = np.ones((3, 3), dtype=int)


def scipy_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and per-pixel component areas of one H, W mask, by scipy."""
    labels, n = ndimage.label(mask, structure=EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    areas = np.where(labels > 0, sizes[labels], 0)
    return labels, areas


def assert_same_partition(ours: np.ndarray, ref: np.ndarray) -> None:
    """Labels equal up to renumbering: the label pairs form a bijection, and background agrees."""
    assert ((ours > 0) == (ref > 0)).all()
    fg = ref > 0
    pairs = np.unique(np.stack([ours[fg], ref[fg]]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def check_against_scipy(masks: np.ndarray) -> None:
    """masks: B, H, W bool."""
    labels, areas = connected_components(torch.from_numpy(masks)[:, None])
    assert labels.dtype == torch.int32 and areas.dtype == torch.int32
    assert labels.shape == areas.shape == (masks.shape[0], 1, *masks.shape[1:])
    for i, mask in enumerate(masks):
        ref_labels, ref_areas = scipy_components(mask)
        assert_same_partition(labels[i, 0].numpy(), ref_labels)
        np.testing.assert_array_equal(areas[i, 0].numpy(), ref_areas)


def spiral(n: int) -> np.ndarray:
    """One pixel wide square spiral with one-pixel gaps between its turns: a single long component."""
    mask = np.zeros((n, n), dtype=bool)
    y, x, dy, dx = 0, 0, 0, 1
    mask[0, 0] = True
    while True:
        ny, nx = y + 2 * dy, x + 2 * dx
        if 0 <= ny < n and 0 <= nx < n and not mask[ny, nx] and not mask[y + dy, x + dx]:
            y, x = y + dy, x + dx
            mask[y, x] = True
            continue
        dy, dx = dx, -dy  # turn right
        ny, nx = y + 2 * dy, x + 2 * dx
        if not (0 <= ny < n and 0 <= nx < n) or mask[ny, nx] or mask[y + dy, x + dx]:
            return mask


def snake(n: int) -> np.ndarray:
    """Boustrophedon: full rows joined alternately at the right and left ends."""
    mask = np.zeros((n, n), dtype=bool)
    mask[::2] = True
    for i, row in enumerate(range(1, n, 2)):
        mask[row, -1 if i % 2 == 0 else 0] = True
    return mask


@pytest.mark.parametrize("density", [0.1, 0.3, 0.45, 0.6, 0.9])
@pytest.mark.parametrize("hw", [(1, 1), (1, 17), (13, 1), (7, 9), (64, 48), (256, 256)])
def test_labels_and_areas_match_scipy_on_random_masks(density: float, hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(hash((density, hw)) % 2**32)
    check_against_scipy(rng.random((3, *hw)) < density)


def test_diagonal_neighbours_are_connected() -> None:
    mask = np.eye(6, dtype=bool) | np.fliplr(np.eye(6, dtype=bool))
    labels, areas = connected_components(torch.from_numpy(mask)[None, None])
    assert len(torch.unique(labels[labels > 0])) == 1
    assert (areas[labels > 0] == mask.sum()).all()


@pytest.mark.parametrize("shape_fn", [spiral, snake])
def test_long_thin_shapes_are_one_component(shape_fn) -> None:
    mask = shape_fn(256)
    assert ndimage.label(mask, structure=EIGHT)[1] == 1
    check_against_scipy(np.stack([mask, ~mask, mask.T]))


def test_all_on_and_all_off_in_one_batch() -> None:
    masks = np.stack([np.ones((40, 30), bool), np.zeros((40, 30), bool)])
    labels, areas = connected_components(torch.from_numpy(masks)[:, None])
    assert (labels[1] == 0).all() and (areas[1] == 0).all()
    assert len(torch.unique(labels[0])) == 1 and (areas[0] == 1200).all()


def test_uint8_input_and_images_of_a_batch_stay_separate() -> None:
    # The same blob at the same place in every image must get its own area per image, not a shared one.
    masks = torch.zeros(4, 1, 10, 10, dtype=torch.uint8)
    masks[:, :, 2:5, 2:5] = 1
    masks[:, :, -1, -1] = 1
    labels, areas = connected_components(masks)
    assert (areas[:, :, 2:5, 2:5] == 9).all() and (areas[:, :, -1, -1] == 1).all()
    assert (labels[0] == labels[3]).all()


def test_labels_start_at_one_and_are_unique_per_component() -> None:
    mask = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    mask[0, 0, 0, 0] = mask[0, 0, 4, 4] = True
    labels, _ = connected_components(mask)
    assert labels[0, 0, 0, 0] == 1 and labels[0, 0, 4, 4] == 25


# ------------------------------------------------------------------------------ clean-ups, scipy reference
def reference_cleanup(logits: np.ndarray, thr: float, hole_area: int, sprinkle_area: int) -> np.ndarray:
    """Holes and sprinkles of one H, W logit map, both found on the input (official semantics)."""
    out = logits.copy()
    if hole_area > 0:
        _, areas = scipy_components(logits <= thr)
        out[(areas > 0) & (areas <= hole_area)] = thr + 10.0
    if sprinkle_area > 0:
        _, areas = scipy_components(logits > thr)
        out[(areas > 0) & (areas <= sprinkle_area)] = thr - 10.0
    return out


def random_logits(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Smoothed noise, so regions of many sizes appear, including holes on the border."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape).astype(np.float32)
    return ndimage.gaussian_filter(noise, sigma=(0,) * (len(shape) - 2) + (1.5, 1.5)) * 4


@pytest.mark.parametrize(
    ("thr", "hole_area", "sprinkle_area"),
    [(0.0, 30, 0), (0.0, 0, 25), (0.0, 40, 40), (0.5, 100, 7), (0.0, 0, 0)],
)
def test_remove_small_regions_matches_reference(thr: float, hole_area: int, sprinkle_area: int) -> None:
    logits = random_logits(1, (3, 2, 64, 80))
    ours = remove_small_regions(torch.from_numpy(logits), thr, hole_area, sprinkle_area).numpy()
    for b in range(3):
        for c in range(2):
            ref = reference_cleanup(logits[b, c], thr, hole_area, sprinkle_area)
            np.testing.assert_array_equal(ours[b, c], ref)
    if hole_area or sprinkle_area:
        assert not np.array_equal(ours, logits)  # the case is not vacuous


def test_remove_small_regions_fills_holes_touching_the_border() -> None:
    logits = torch.full((1, 1, 8, 8), 5.0)
    logits[0, 0, 0, :3] = -5.0  # a background strip on the top edge
    out = remove_small_regions(logits, 0.0, max_hole_area=3, max_sprinkle_area=0)
    assert (out[0, 0, 0, :3] == 10.0).all()


@pytest.mark.parametrize("max_area", [1, 8, 50])
def test_fill_small_holes_matches_reference(max_area: int) -> None:
    logits = random_logits(2, (4, 1, 256, 256))
    ours = fill_small_holes(torch.from_numpy(logits), max_area).numpy()
    for b in range(4):
        _, areas = scipy_components(logits[b, 0] <= 0)
        ref = np.where((areas > 0) & (areas <= max_area), np.float32(0.1), logits[b, 0])
        np.testing.assert_array_equal(ours[b, 0], ref)
    assert not np.array_equal(ours, logits)


def test_fill_small_holes_with_no_area_is_identity() -> None:
    logits = torch.randn(2, 1, 16, 16)
    assert fill_small_holes(logits, 0) is logits


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    masks = torch.rand(6, 1, 256, 256) < 0.5
    masks[0, 0] = torch.from_numpy(spiral(256))
    cpu = connected_components(masks)
    gpu = connected_components(masks.cuda())
    assert torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())
