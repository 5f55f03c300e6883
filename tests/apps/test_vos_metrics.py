"""J and F as DAVIS 2017 and the SA-V evaluator define them, on small masks worked out by hand.

Images of 20 x 30 pixels have a diagonal of 36.06 pixels, so the boundary tolerance is
ceil(0.008 * 36.06) = 1 pixel: a boundary pixel matches when the other boundary has a pixel at it or at one of
its four direct neighbours.
"""

from __future__ import annotations

import numpy as np
import pytest

from apps.vos.metrics import (
    boundary_f_measure,
    boundary_map,
    dilate_disk,
    region_similarity,
    tolerance_radius,
)

H, W = 20, 30


def _columns(first: int, last: int, rows: slice = slice(None)) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[rows, first : last + 1] = True
    return mask


def _pixel(y: int, x: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y, x] = True
    return mask


def _pixels(mask: np.ndarray) -> set[tuple[int, int]]:
    return {(int(y), int(x)) for y, x in np.argwhere(mask)}


def test_the_tolerance_is_ceil_of_0_008_of_the_diagonal():
    assert tolerance_radius(H, W) == 1
    assert tolerance_radius(480, 854) == 8  # DAVIS 480p: 0.008 * 979.6 = 7.84
    assert tolerance_radius(720, 1280) == 12  # 0.008 * 1468.6 = 11.75


def test_boundary_of_a_square_lies_half_a_pixel_towards_the_origin():
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    # A pixel is on the boundary when it differs from its right, lower or lower-right neighbour.
    expected = {(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)}
    assert _pixels(boundary_map(mask)) == expected


def test_the_image_border_is_not_a_boundary():
    left = np.zeros((4, 6), bool)
    left[:, :2] = True
    assert _pixels(boundary_map(left)) == {(0, 1), (1, 1), (2, 1), (3, 1)}
    assert not boundary_map(np.ones((4, 6), bool)).any()


def test_one_pixel_objects_have_a_four_pixel_boundary_except_in_the_last_corner():
    assert _pixels(boundary_map(_pixel(5, 5))) == {(4, 4), (4, 5), (5, 4), (5, 5)}
    # The bottom-right pixel itself is never on the boundary; the last row and column compare one way.
    assert _pixels(boundary_map(_pixel(H - 1, W - 1))) == {(18, 28), (18, 29), (19, 28)}


def test_region_similarity_is_intersection_over_union():
    assert region_similarity(_columns(0, 10), _columns(0, 9)) == pytest.approx(200 / 220)
    staircase = _columns(0, 10, slice(0, 10)) | _columns(0, 12, slice(10, 20))  # 110 + 130 pixels
    assert region_similarity(staircase, _columns(0, 9)) == pytest.approx(200 / 240)


def test_boundaries_one_pixel_apart_match_and_two_pixels_apart_do_not():
    truth = _columns(0, 9)  # boundary: column 9, 20 pixels
    assert boundary_f_measure(_columns(0, 10), truth) == 1.0
    assert boundary_f_measure(_columns(0, 11), truth) == 0.0


def test_boundary_f_of_a_partly_matching_staircase():
    truth = _columns(0, 9)  # boundary: column 9, rows 0-19
    staircase = _columns(0, 10, slice(0, 10)) | _columns(0, 12, slice(10, 20))
    # Predicted boundary: column 10 on rows 0-9, (9, 11) and (9, 12) above the step, column 12 on rows
    # 10-19: 22 pixels, of which the 10 in column 10 are next to the true boundary: precision 10/22.
    # True boundary pixels with a predicted one next to them: rows 0-9: recall 10/20.
    # F = 2 * (10/22) * (1/2) / (10/22 + 1/2) = 10/21.
    assert boundary_map(staircase).sum() == 22
    assert boundary_f_measure(staircase, truth) == pytest.approx(10 / 21)


def test_one_pixel_objects():
    assert region_similarity(_pixel(5, 5), _pixel(5, 5)) == 1.0
    assert boundary_f_measure(_pixel(5, 5), _pixel(5, 5)) == 1.0
    # One pixel to the right: no overlap, but every boundary pixel is next to the other boundary.
    assert region_similarity(_pixel(5, 6), _pixel(5, 5)) == 0.0
    assert boundary_f_measure(_pixel(5, 6), _pixel(5, 5)) == 1.0
    assert boundary_f_measure(_pixel(5, 8), _pixel(5, 5)) == 0.0


def test_empty_masks():
    empty = np.zeros((H, W), bool)
    square = _columns(3, 6, slice(4, 8))
    assert region_similarity(empty, empty) == 1.0 and boundary_f_measure(empty, empty) == 1.0
    assert region_similarity(empty, square) == 0.0 and boundary_f_measure(empty, square) == 0.0
    assert region_similarity(square, empty) == 0.0 and boundary_f_measure(square, empty) == 0.0


def test_masks_touching_the_border():
    full = np.ones((H, W), bool)
    # A full-image prediction has no boundary: against a true object, precision 1 and recall 0.
    assert boundary_f_measure(full, _columns(0, 9)) == 0.0
    assert boundary_f_measure(full, full) == 1.0 and region_similarity(full, full) == 1.0
    # The bottom rows: the boundary is the row above the object, which matches itself exactly.
    bottom = np.zeros((H, W), bool)
    bottom[15:] = True
    assert boundary_f_measure(bottom, bottom) == 1.0
    shifted = np.zeros((H, W), bool)
    shifted[17:] = True
    assert boundary_f_measure(shifted, bottom) == 0.0
    assert region_similarity(shifted, bottom) == pytest.approx(3 / 5)


@pytest.mark.parametrize("radius", [0, 1, 2, 5, 12])
def test_disk_dilation_equals_a_morphological_dilation_by_the_disk(radius):
    from scipy import ndimage

    mask = np.random.default_rng(radius).random((60, 90)) > 0.97
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    disk = x * x + y * y <= radius * radius
    assert (dilate_disk(mask, radius) == ndimage.binary_dilation(mask, structure=disk)).all()


@pytest.mark.parametrize("shape", [(20, 30), (120, 200), (300, 400)])
def test_boundary_f_equals_a_brute_force_nearest_pixel_count(shape):
    rng = np.random.default_rng(sum(shape))
    radius = tolerance_radius(*shape)
    h, w = shape
    truth = np.zeros(shape, bool)
    truth[h // 4 : 3 * h // 4, w // 5 : 3 * w // 5] = True
    pred = truth.copy()
    pred[rng.integers(0, h, 40), rng.integers(0, w, 40)] ^= True  # speckle both ways
    pred[: h // 3, : w // 3] |= rng.random((h // 3, w // 3)) > 0.95

    def matched(a: np.ndarray, b: np.ndarray) -> int:
        pa, pb = np.argwhere(a), np.argwhere(b)
        d2 = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)
        return int((d2.min(axis=1) <= radius * radius).sum())

    pe, te = boundary_map(pred), boundary_map(truth)
    precision = matched(pe, te) / pe.sum()
    recall = matched(te, pe) / te.sum()
    expected = 2 * precision * recall / (precision + recall)
    assert boundary_f_measure(pred, truth) == pytest.approx(expected, abs=1e-12)


def test_masks_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        region_similarity(np.zeros((4, 5), bool), np.zeros((5, 4), bool))
