"""SAM2AutomaticMaskGenerator against the official generator on the same random weights (fp32, CPU).

Random weights give low-contrast, dithered logits (|logit| ~ 0.1-0.4) that follow the image's shapes, and
predicted IoUs packed around 0.45. With the default mask threshold every mask covers the whole image and box
NMS keeps one, so the cases binarise at 0.2 (0.3 after m2m) with a 0.02 stability offset: the masks become
shape-like regions of varied boxes and NMS has real work to do. Both generators get the same settings; the
IoU and stability filters both remove masks (16 -> 7 in the grid case). About 1.5 min on 2 CPU cores
(7 image encodes per side).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator as OfficialGenerator

from model.images.automatic_mask_generator import SAM2AutomaticMaskGenerator
from model.loading.build import build_sam2
from tests.support.hub_cache import populate_hub_cache
from tests.support.official_ref import build_official, save_official_checkpoint
from tests.support.synthetic import shapes_image

pytestmark = [
    pytest.mark.parity,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),  # pycocotools
]

CONFIG = "sam2.1_hiera_tiny"
IMAGE_HW = (320, 480)
COMMON = dict(
    mask_threshold=0.2, stability_score_offset=0.02, pred_iou_thresh=0.43, stability_score_thresh=0.1
)
CASES = {
    "grid_binary_mask": dict(points_per_side=6, points_per_batch=16, output_mode="binary_mask"),
    # The refined logits are larger: a higher threshold keeps the masks apart.
    "m2m_coco_rle": dict(
        points_per_side=5, points_per_batch=20, use_m2m=True, mask_threshold=0.3, output_mode="coco_rle"
    ),
    "crops_uncompressed_rle": dict(points_per_side=4, crop_n_layers=1, output_mode="uncompressed_rle"),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    # As users build it: with the official post-processing (the dynamic multimask fallback, which the
    # single-mask m2m pass exercises).
    official = build_official(CONFIG, seed=1, apply_postprocessing=True)
    ckpt = save_official_checkpoint(official, tmp_path_factory.mktemp("amg") / f"{CONFIG}.pt")
    return official, build_sam2(CONFIG, ckpt, device="cpu", apply_postprocessing=True), ckpt


def to_bool_mask(segmentation, output_mode: str) -> np.ndarray:
    """Decode any output mode with pycocotools (independent of both implementations)."""
    if output_mode == "binary_mask":
        assert isinstance(segmentation, np.ndarray) and segmentation.dtype == bool
        return segmentation
    h, w = segmentation["size"]
    if output_mode == "uncompressed_rle":
        assert isinstance(segmentation["counts"], list)
        segmentation = coco_mask.frPyObjects(segmentation, h, w)
    else:
        assert isinstance(segmentation["counts"], str)
    return coco_mask.decode(segmentation).astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def match(ours: list[dict], ref: list[dict], output_mode: str) -> list[tuple[dict, dict, float]]:
    """Pair every official mask with a distinct one of ours, by best mask IoU."""
    ours_masks = [to_bool_mask(o["segmentation"], output_mode) for o in ours]
    ref_masks = [to_bool_mask(r["segmentation"], output_mode) for r in ref]
    pairs, used = [], set()
    for r, r_mask in zip(ref, ref_masks):
        ious = [-1.0 if i in used else mask_iou(m, r_mask) for i, m in enumerate(ours_masks)]
        best = int(np.argmax(ious))
        used.add(best)
        pairs.append((ours[best], r, ious[best]))
    for o, m in zip(ours, ours_masks):
        assert o["area"] == int(m.sum())
        assert m.shape == IMAGE_HW
    return pairs


@pytest.mark.parametrize("case", list(CASES))
def test_generator_matches_official(models, case: str) -> None:
    official_model, ours_model, _ = models
    kwargs = {**COMMON, **CASES[case]}
    image = shapes_image(*IMAGE_HW)
    with torch.no_grad():
        ref = OfficialGenerator(official_model, **kwargs).generate(image)
        ours = SAM2AutomaticMaskGenerator(ours_model, **kwargs).generate(image)

    print(f"\n{case}: official {len(ref)} masks, ours {len(ours)}")
    assert len(ref) >= 2, f"{case}: only {len(ref)} official masks, the comparison would be vacuous"
    assert len(ours) == len(ref)
    assert set(ours[0]) == set(ref[0])
    pairs = match(ours, ref, kwargs["output_mode"])
    worst = min(iou for _, _, iou in pairs)
    print(f"{case}: worst matched IoU {worst:.5f}, crops {sorted({tuple(r['crop_box']) for r in ref})}")
    for o, r, iou in pairs:
        assert iou >= 0.99, f"{case}: mask IoU {iou:.4f}"
        assert o["point_coords"][0] == pytest.approx(r["point_coords"][0], abs=1e-4)
        assert o["crop_box"] == r["crop_box"]
        assert o["bbox"] == pytest.approx(r["bbox"], abs=2)
        assert o["area"] == pytest.approx(r["area"], rel=0.01, abs=5)
        assert o["predicted_iou"] == pytest.approx(r["predicted_iou"], abs=1e-3)
        assert o["stability_score"] == pytest.approx(r["stability_score"], abs=0.02)
        assert isinstance(o["area"], int) and isinstance(o["predicted_iou"], float)
    if CASES[case].get("crop_n_layers"):
        assert len({tuple(o["crop_box"]) for o in ours}) >= 2, "no mask survived from the crops"


def test_from_pretrained_splits_builder_and_generator_arguments(models, hub_cache) -> None:
    _, _, ckpt = models
    populate_hub_cache(hub_cache, "facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt", ckpt)
    generator = SAM2AutomaticMaskGenerator.from_pretrained(
        "facebook/sam2.1-hiera-tiny", device="cpu", points_per_side=4, min_mask_region_area=25, use_m2m=True
    )
    expected = torch.load(ckpt, weights_only=True)["model"]
    assert torch.equal(generator.predictor.model.no_mem_embed, expected["no_mem_embed"])
    assert generator.point_grids[0].shape == (16, 2) and generator.use_m2m
    # Unlike the official one without its CUDA extension, ours really cleans holes and islands.
    assert generator.predictor.max_hole_area == generator.predictor.max_sprinkle_area == 25


def test_constructor_rejects_inconsistent_arguments(models) -> None:
    _, ours_model, _ = models
    with pytest.raises(ValueError, match="exactly one"):
        SAM2AutomaticMaskGenerator(ours_model, points_per_side=None)
    with pytest.raises(ValueError, match="exactly one"):
        SAM2AutomaticMaskGenerator(ours_model, point_grids=[np.zeros((1, 2))])
    with pytest.raises(ValueError, match="output_mode"):
        SAM2AutomaticMaskGenerator(ours_model, output_mode="polygon")
    with pytest.raises(ValueError, match="one grid per layer"):
        grids = [np.zeros((1, 2))]
        SAM2AutomaticMaskGenerator(ours_model, points_per_side=None, point_grids=grids, crop_n_layers=1)
