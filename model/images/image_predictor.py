"""Interactive single-image segmentation with the official ``SAM2ImagePredictor`` API."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from model.images.transforms import ImageTransforms, image_shape
from model.network.sam2 import ImageFeatures, SAM2Model

LOW_RES_LOGIT_CLAMP = 32.0


class SAM2ImagePredictor:
    """Embeds an image once, then predicts masks for any number of point / box / mask prompts.

    Arguments:
      sam_model: the SAM 2 network (``build_sam2(...)``).
      mask_threshold: logit threshold that turns logits into masks.
      max_hole_area: background regions of the 256x256 logits up to this area become foreground.
      max_sprinkle_area: foreground regions up to this area become background.
    """

    def __init__(
        self,
        sam_model: SAM2Model,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        **kwargs,
    ) -> None:
        self.model = sam_model
        self.mask_threshold = mask_threshold
        self._transforms = ImageTransforms(
            resolution=sam_model.image_size,
            mask_threshold=mask_threshold,
            max_hole_area=max_hole_area,
            max_sprinkle_area=max_sprinkle_area,
        )
        self.reset_predictor()

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> SAM2ImagePredictor:
        """Load ``model_id`` (e.g. ``"facebook/sam2.1-hiera-large"``) from the Hugging Face hub or its cache.

        Keyword arguments go to both ``build_sam2`` and the predictor, as in the official API.
        """
        from model.loading.build import from_pretrained

        build_keys = {"device", "mode", "apply_postprocessing", "image_size"}
        model = from_pretrained(model_id, **{k: v for k, v in kwargs.items() if k in build_keys})
        return cls(model, **{k: v for k, v in kwargs.items() if k not in build_keys})

    # ------------------------------------------------------------------ state
    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def orig_hw(self) -> list[tuple[int, int]] | None:
        """(height, width) of each image set, in order."""
        return self._orig_hw

    @property
    def max_hole_area(self) -> float:
        return self._transforms.max_hole_area

    @max_hole_area.setter
    def max_hole_area(self, value: float) -> None:
        self._transforms.max_hole_area = value

    @property
    def max_sprinkle_area(self) -> float:
        return self._transforms.max_sprinkle_area

    @max_sprinkle_area.setter
    def max_sprinkle_area(self, value: float) -> None:
        self._transforms.max_sprinkle_area = value

    def reset_predictor(self) -> None:
        """Forget the current image(s) and their features."""
        self._features: ImageFeatures | None = None
        self._image_embed: torch.Tensor | None = None
        self._orig_hw: list[tuple[int, int]] | None = None
        self._is_image_set = False
        self._is_batch = False

    # ------------------------------------------------------------------ embedding
    @torch.no_grad()
    def set_image(self, image: np.ndarray | Image.Image) -> None:
        """Compute the embedding of one RGB image (``H, W, 3`` uint8 array or PIL image)."""
        self.reset_predictor()
        hw = _image_hw(image)
        batch = self._transforms.image_to_input(image)[None].to(self.device)
        self._embed(batch, [hw])

    @torch.no_grad()
    def set_image_batch(self, image_list: list[np.ndarray]) -> None:
        """Compute the embeddings of several RGB images, for ``predict_batch``."""
        self.reset_predictor()
        if not isinstance(image_list, (list, tuple)) or not image_list:
            raise ValueError("set_image_batch expects a non-empty list of H, W, 3 images")
        hws = [_image_hw(image) for image in image_list]
        batch = self._transforms.images_to_batch(list(image_list)).to(self.device)
        self._embed(batch, hws)
        self._is_batch = True

    def _embed(self, batch: torch.Tensor, hws: list[tuple[int, int]]) -> None:
        features = self.model.encode_image(batch)
        # Single images are "initial conditioning frames": the learned no-memory embedding is added.
        self._image_embed = features.embedding + self.model.no_mem_embed.view(1, -1, 1, 1)
        self._features = features
        self._orig_hw = hws
        self._is_image_set = True

    def get_image_embedding(self) -> torch.Tensor:
        """The embedding of the current image, ``1, 256, 64, 64`` (``no_mem_embed`` included)."""
        self._require_image("get_image_embedding")
        return self._image_embed

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for prompts on the current image.

        Arguments:
          point_coords: N, 2 (x, y) image pixels (or [0, 1] with ``normalize_coords=False``);
            B, N, 2 for a batch.
          point_labels: N labels, 1 foreground, 0 background.
          box: 4 (XYXY) or B, 4 for a batch of boxes.
          mask_input: 1, 256, 256 logits from a previous call (B, 1, 256, 256 for a batch).
          multimask_output: return 3 candidates (best for a single ambiguous click) instead of 1.
          return_logits: return logits instead of boolean masks.
          normalize_coords: the coordinates are image pixels (True) or already in [0, 1] (False).

        Returns:
          masks C, H, W (float32 0/1, or logits); ious C; low-res logits C, 256, 256 clamped to +-32.
          A batch of B prompts adds a leading B axis.
        """
        self._require_image("predict")
        prompts = self._prepare_prompts(
            point_coords, point_labels, box, mask_input, normalize_coords, img_idx=-1
        )
        masks, ious, low_res = self.predict_torch(*prompts, multimask_output, return_logits, img_idx=-1)
        return _to_numpy(masks.squeeze(0)), _to_numpy(ious.squeeze(0)), _to_numpy(low_res.squeeze(0))

    def predict_batch(
        self,
        point_coords_batch: list[np.ndarray] | None = None,
        point_labels_batch: list[np.ndarray] | None = None,
        box_batch: list[np.ndarray] | None = None,
        mask_input_batch: list[np.ndarray] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """``predict`` for each image set by ``set_image_batch``; arguments are lists, one entry per image."""
        self._require_image("predict_batch")
        if not self._is_batch:
            raise RuntimeError(
                "predict_batch needs images set with set_image_batch(...); use predict() otherwise"
            )
        all_masks, all_ious, all_low_res = [], [], []
        for i in range(len(self._orig_hw)):
            prompts = self._prepare_prompts(
                _item(point_coords_batch, i),
                _item(point_labels_batch, i),
                _item(box_batch, i),
                _item(mask_input_batch, i),
                normalize_coords,
                img_idx=i,
            )
            masks, ious, low_res = self.predict_torch(*prompts, multimask_output, return_logits, img_idx=i)
            all_masks.append(_to_numpy(masks.squeeze(0)))
            all_ious.append(_to_numpy(ious.squeeze(0)))
            all_low_res.append(_to_numpy(low_res.squeeze(0)))
        return all_masks, all_ious, all_low_res

    def transform_coords(
        self,
        coords: np.ndarray | torch.Tensor,
        normalize: bool = True,
        orig_hw: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Image coordinates ``..., 2`` -> the network's input frame (pixels of the square input)."""
        return self._transforms.transform_coords(torch.as_tensor(coords), normalize, orig_hw).to(self.device)

    def _prepare_prompts(
        self,
        point_coords: np.ndarray | None,
        point_labels: np.ndarray | None,
        box: np.ndarray | None,
        mask_input: np.ndarray | None,
        normalize_coords: bool,
        img_idx: int,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        hw = self._orig_hw[img_idx]
        coords = labels = boxes = masks = None
        if point_coords is not None:
            if point_labels is None:
                raise ValueError(
                    "point_labels must be given with point_coords (1 = foreground, 0 = background)"
                )
            coords = self.transform_coords(np.asarray(point_coords, dtype=np.float32), normalize_coords, hw)
            labels = torch.as_tensor(np.asarray(point_labels), dtype=torch.int32, device=self.device)
            if coords.shape[-1] != 2 or coords.shape[:-1] != labels.shape:
                raise ValueError(
                    f"point_coords {tuple(coords.shape)} and point_labels {tuple(labels.shape)} disagree: "
                    "expected N, 2 coordinates and N labels"
                )
            if coords.ndim == 2:
                coords, labels = coords[None], labels[None]
        if box is not None:
            box_t = torch.as_tensor(np.asarray(box, dtype=np.float32))
            if box_t.numel() % 4:
                raise ValueError(f"a box is 4 numbers (x0, y0, x1, y1); got shape {tuple(box_t.shape)}")
            boxes = self._transforms.transform_boxes(box_t, normalize_coords, hw).to(self.device)  # B, 2, 2
        if mask_input is not None:
            masks = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32, device=self.device)
            if masks.ndim == 3:
                masks = masks[None]
        return coords, labels, boxes, masks

    @torch.no_grad()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        img_idx: int = -1,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prediction on tensors already in the input frame (see ``transform_coords``).

        Arguments:
          point_coords: B, N, 2 input-frame pixels; point_labels: B, N.
          boxes: B, 4 or B, 2, 2 input-frame XYXY.
          mask_input: B, 1, 256, 256 logits.

        Returns:
          masks B, C, H, W (bool unless ``return_logits``), ious B, C, low-res logits B, C, 256, 256.
        """
        self._require_image("predict_torch")
        points = None if point_coords is None else (point_coords, point_labels)
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2)
            corner_labels = torch.tensor([[2, 3]], dtype=torch.int32, device=corners.device).repeat(
                len(corners), 1
            )
            if points is None:
                points = (corners, corner_labels)
            else:  # box corners go first, then the clicks
                points = (
                    torch.cat([corners, points[0]], dim=1),
                    torch.cat([corner_labels, points[1]], dim=1),
                )
        sparse, dense = self.model.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)
        several_prompts = points is not None and points[0].shape[0] > 1
        image = self._features.select(img_idx)
        embed = self._image_embed[img_idx % self._image_embed.shape[0]][None]
        low_res, ious, _, _ = self.model.sam_mask_decoder(
            image_embeddings=embed,
            image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=several_prompts,
            high_res_features=image.high_res,
        )
        masks = self._transforms.postprocess_masks(low_res, self._orig_hw[img_idx])
        low_res = torch.clamp(low_res, -LOW_RES_LOGIT_CLAMP, LOW_RES_LOGIT_CLAMP)
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks, ious, low_res

    def _require_image(self, what: str) -> None:
        if not self._is_image_set:
            raise RuntimeError(f"{what} needs an image: call set_image(...) (or set_image_batch) first")


def _image_hw(image: object) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return (image.size[1], image.size[0])
    if isinstance(image, np.ndarray) and image.ndim in (2, 3):
        return (int(image.shape[0]), int(image.shape[1]))
    raise TypeError(
        f"expected an RGB image as an H, W, 3 numpy array or a PIL image, got {type(image).__name__} "
        f"of shape {image_shape(image)}"
    )


def _item(values: list | None, i: int):
    return None if values is None else values[i]


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    # As the official predictor does, masks come back as float32 0/1 arrays (or logits).
    return t.float().detach().cpu().numpy()
