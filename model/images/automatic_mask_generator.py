""" "Segment everything": prompt SAM 2 with a grid of single clicks and keep the good, distinct masks.

Pipeline, for the whole image and then (optionally) for layers of overlapping crops:
  1. embed the crop, click every grid point (in batches), take 1 or 3 masks per click;
  2. optionally refine each mask once by feeding its low-res logits back with the click ("m2m");
  3. drop masks with low predicted IoU or low stability, threshold, drop masks cut by a crop border;
  4. box NMS within the crop (by predicted IoU), then across crops (preferring smaller crops).
Masks are kept as run-length encodings between steps so thousands of candidates stay cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision.ops import batched_nms, box_area

from model.images.amg_utils import (
    MaskRecords,
    batches,
    crop_boxes_for_layers,
    layer_point_grids,
    masks_to_boxes,
    masks_to_rle,
    near_crop_edge,
    rle_area,
    rle_to_coco,
    rle_to_mask,
    stability_score,
    uncrop_boxes,
    uncrop_masks,
    uncrop_points,
    xyxy_to_xywh,
)
from model.images.image_predictor import SAM2ImagePredictor

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
_BUILD_KEYS = {"device", "mode", "apply_postprocessing", "image_size"}


class SAM2AutomaticMaskGenerator:
    """Generates masks for a whole image from a grid of point prompts (the official API and behaviour).

    Arguments:
      model: the SAM 2 network (``build_sam2(...)``).
      points_per_side: grid points along each side of the image (points_per_side**2 clicks); ``None`` when
        ``point_grids`` is given instead.
      points_per_batch: clicks decoded together; more is faster and uses more memory.
      pred_iou_thresh: keep masks whose predicted IoU is above this (0 disables).
      stability_score_thresh: keep masks whose stability score is at least this (0 disables).
      stability_score_offset: logit shift used by the stability score.
      mask_threshold: logit threshold that binarises the masks.
      box_nms_thresh: box IoU above which duplicate masks of one crop are suppressed.
      crop_n_layers: extra layers of crops; layer i has (2**i)**2 crops.
      crop_nms_thresh: box IoU above which duplicates from different crops are suppressed.
      crop_overlap_ratio: overlap of the first crop layer as a fraction of the image's short side.
      crop_n_points_downscale_factor: layer i uses points_per_side / factor**i points per side.
      point_grids: explicit [0, 1] (x, y) grids, one per layer, instead of ``points_per_side``.
      min_mask_region_area: passed to the predictor as ``max_hole_area`` and ``max_sprinkle_area``: holes and
        islands of at most this many pixels of the 256x256 logits are removed before upsampling. The official
        implementation needs its CUDA extension for this and silently skips it without one; ours applies it.
      output_mode: "binary_mask" (H, W bool array), "uncompressed_rle" or "coco_rle" (dicts).
      use_m2m: refine every mask once with its own low-res logits as a mask prompt.
      multimask_output: 3 candidate masks per click instead of 1.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        **kwargs,
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side or point_grids")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        if point_grids is None:
            point_grids = layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        elif len(point_grids) < crop_n_layers + 1:
            n_grids = len(point_grids)
            raise ValueError(f"point_grids needs one grid per layer ({crop_n_layers + 1}), got {n_grids}")
        self.point_grids = point_grids
        # As in the official generator, the predictor keeps its default mask threshold (0.0) for the
        # hole / island clean-up even when ``mask_threshold`` differs.
        self.predictor = SAM2ImagePredictor(
            model, max_hole_area=min_mask_region_area, max_sprinkle_area=min_mask_region_area
        )
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.mask_threshold = mask_threshold
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> SAM2AutomaticMaskGenerator:
        """Generator for a Hugging Face id (``"facebook/sam2.1-hiera-large"``), from the hub or its cache.

        ``device``, ``mode``, ``apply_postprocessing`` and ``image_size`` go to the model builder, the other
        keyword arguments to the generator.
        """
        from model.loading.build import from_pretrained

        model = from_pretrained(model_id, **{k: v for k, v in kwargs.items() if k in _BUILD_KEYS})
        return cls(model, **{k: v for k, v in kwargs.items() if k not in _BUILD_KEYS})

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Masks for the whole image.

        Arguments:
          image: H, W, 3 uint8 RGB array.

        Returns:
          one dict per mask, with
            segmentation: H, W bool array, or an uncompressed / COCO RLE dict (see ``output_mode``);
            area: set pixels (int); bbox: XYWH box (floats, inclusive pixel extent minus one);
            predicted_iou, stability_score: floats; point_coords: [[x, y]] the click in image pixels;
            crop_box: XYWH crop that produced the mask.
        """
        records = self._generate_records(image)
        if self.output_mode == "coco_rle":
            segmentations = [rle_to_coco(rle) for rle in records["rles"]]
        elif self.output_mode == "binary_mask":
            segmentations = [rle_to_mask(rle) for rle in records["rles"]]
        else:
            segmentations = records["rles"]
        return [
            {
                "segmentation": segmentations[i],
                "area": rle_area(records["rles"][i]),
                "bbox": xyxy_to_xywh(records["boxes"][i]).tolist(),
                "predicted_iou": float(records["iou_preds"][i]),
                "point_coords": [records["points"][i].tolist()],
                "stability_score": float(records["stability_score"][i]),
                "crop_box": xyxy_to_xywh(records["crop_boxes"][i]).tolist(),
            }
            for i in range(len(segmentations))
        ]

    def _generate_records(self, image: np.ndarray) -> MaskRecords:
        image_hw = image.shape[:2]
        crop_boxes, layers = crop_boxes_for_layers(image_hw, self.crop_n_layers, self.crop_overlap_ratio)
        records = MaskRecords()
        for crop_box, layer in zip(crop_boxes, layers):
            records.cat(self._process_crop(image, crop_box, layer))
        if len(crop_boxes) > 1 and len(records) > 0:
            # The same object seen by several crops: keep the one from the smallest crop.
            scores = (1 / box_area(records["crop_boxes"])).to(records["boxes"].device)
            keep = batched_nms(
                records["boxes"].float(),
                scores,
                torch.zeros_like(records["boxes"][:, 0]),
                iou_threshold=self.crop_nms_thresh,
            )
            records.filter(keep)
        records.to_numpy()
        return records

    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int) -> MaskRecords:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        crop_hw = crop.shape[:2]
        self.predictor.set_image(crop)
        points = self.point_grids[layer] * np.array(crop_hw)[None, ::-1]  # P, 2 crop pixels (x, y)

        records = MaskRecords()
        for (batch,) in batches(self.points_per_batch, points):
            records.cat(self._process_batch(batch, crop_hw, crop_box, image.shape[:2]))
        self.predictor.reset_predictor()

        keep = batched_nms(
            records["boxes"].float(),
            records["iou_preds"],
            torch.zeros_like(records["boxes"][:, 0]),
            iou_threshold=self.box_nms_thresh,
        )
        records.filter(keep)
        records["boxes"] = uncrop_boxes(records["boxes"], crop_box)
        records["points"] = uncrop_points(records["points"], crop_box)
        n = len(records["rles"])
        records["crop_boxes"] = torch.tensor([crop_box] * n, dtype=torch.int64).reshape(n, 4)
        return records

    def _process_batch(
        self, points: np.ndarray, crop_hw: tuple[int, int], crop_box: list[int], image_hw: tuple[int, int]
    ) -> MaskRecords:
        device = self.predictor.device
        points_t = torch.as_tensor(points, dtype=torch.float32, device=device)  # P, 2
        in_points = self.predictor.transform_coords(points_t, normalize=True, orig_hw=crop_hw)
        labels = torch.ones(len(in_points), dtype=torch.int32, device=device)
        masks, ious, low_res = self.predictor.predict_torch(
            in_points[:, None], labels[:, None], multimask_output=self.multimask_output, return_logits=True
        )  # P, C, h, w; P, C; P, C, 256, 256
        records = MaskRecords(
            masks=masks.flatten(0, 1),
            iou_preds=ious.flatten(0, 1),
            points=points_t.repeat_interleave(masks.shape[1], dim=0),
            low_res_masks=low_res.flatten(0, 1),
        )
        del masks

        if self.use_m2m:
            in_points = self.predictor.transform_coords(records["points"], normalize=True, orig_hw=crop_hw)
            records["masks"], records["iou_preds"] = self._refine(in_points, records["low_res_masks"])
        if self.pred_iou_thresh > 0.0:
            records.filter(records["iou_preds"] > self.pred_iou_thresh)
        records["stability_score"] = stability_score(
            records["masks"], self.mask_threshold, self.stability_score_offset
        )
        if self.stability_score_thresh > 0.0:
            records.filter(records["stability_score"] >= self.stability_score_thresh)

        records["masks"] = records["masks"] > self.mask_threshold
        records["boxes"] = masks_to_boxes(records["masks"])
        image_h, image_w = image_hw
        cut = near_crop_edge(records["boxes"], crop_box, [0, 0, image_w, image_h])
        if cut.any():
            records.filter(~cut)
        # Store the full-image masks compactly.
        records["rles"] = masks_to_rle(uncrop_masks(records["masks"], crop_box, image_h, image_w))
        del records["masks"]
        return records

    def _refine(self, in_points: torch.Tensor, low_res: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One more decoder pass per mask with its click and its own low-res logits; single-mask output.

        in_points: N, 2 input-frame clicks; low_res: N, 256, 256. Returns masks N, h, w and ious N.
        """
        labels = torch.ones(len(in_points), dtype=torch.int32, device=in_points.device)
        masks, ious = [], []
        for pts, lbl, prev in batches(self.points_per_batch, in_points, labels, low_res):
            m, iou, _ = self.predictor.predict_torch(
                pts[:, None],
                lbl[:, None],
                mask_input=prev[:, None],
                multimask_output=False,
                return_logits=True,
            )
            masks.append(m[:, 0])
            ious.append(iou[:, 0])
        return torch.cat(masks), torch.cat(ious)
