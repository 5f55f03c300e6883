"""Pre-processing of images and prompts into the network's frame, and mask post-processing."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageTransforms:
    """Maps images and prompts into the square ``resolution`` input frame and masks back out.

    Images are resized to a square (aspect ratio not kept, no padding) with antialiased bilinear
    interpolation on floats, then ImageNet-normalised. Masks come back by bilinear upsampling of the
    256x256 logits after optional hole / sprinkle removal.
    """

    def __init__(
        self,
        resolution: int,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
    ) -> None:
        self.resolution = resolution
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area

    def image_to_input(self, image: np.ndarray | Image.Image | torch.Tensor) -> torch.Tensor:
        """One RGB image (HWC array, PIL image, or CHW float tensor) -> normalised 3, R, R float tensor."""
        if isinstance(image, Image.Image) and image.mode != "RGB":
            image = image.convert("RGB")
        if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]  # drop an alpha channel
        if isinstance(image, np.ndarray) and image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)  # greyscale
        if isinstance(image, torch.Tensor):
            tensor = image.float()
        else:
            # uint8 arrays and PIL images are scaled to [0, 1]; float arrays are taken as they are.
            tensor = TF.to_tensor(image)
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise ValueError(
                f"expected an RGB image (H, W, 3), got an array of shape {tuple(image_shape(image))}"
            )
        tensor = TF.resize(tensor, [self.resolution, self.resolution], antialias=True)
        return TF.normalize(tensor, IMAGENET_MEAN, IMAGENET_STD)

    def images_to_batch(self, images: list[np.ndarray]) -> torch.Tensor:
        """A list of RGB images -> B, 3, R, R."""
        return torch.stack([self.image_to_input(image) for image in images], dim=0)

    def transform_coords(
        self, coords: torch.Tensor, normalize: bool = False, orig_hw: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Points ``..., 2`` (x, y) -> input-frame pixels.

        With ``normalize`` the points are image pixels and are divided by the image size first;
        without, they are taken as already normalised to [0, 1].
        """
        coords = torch.as_tensor(coords, dtype=torch.float32).clone()
        if normalize:
            if orig_hw is None:
                raise ValueError("orig_hw is required to normalise pixel coordinates")
            h, w = orig_hw
            coords[..., 0] = coords[..., 0] / w
            coords[..., 1] = coords[..., 1] / h
        return coords * self.resolution

    def transform_boxes(
        self, boxes: torch.Tensor, normalize: bool = False, orig_hw: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Boxes ``B, 4`` XYXY -> corner points ``B, 2, 2`` in the input frame."""
        return self.transform_coords(torch.as_tensor(boxes).reshape(-1, 2, 2), normalize, orig_hw)

    def postprocess_masks(self, low_res_logits: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        """B, C, 256, 256 logits -> B, C, H, W logits at the image size (small regions cleaned first)."""
        logits = low_res_logits.float()
        if self.max_hole_area > 0 or self.max_sprinkle_area > 0:
            from model.images.connected_components import remove_small_regions

            flat = logits.flatten(0, 1).unsqueeze(1)  # B*C, 1, h, w
            flat = remove_small_regions(
                flat, self.mask_threshold, int(self.max_hole_area), int(self.max_sprinkle_area)
            )
            logits = flat.reshape_as(logits)
        return F.interpolate(logits, size=tuple(orig_hw), mode="bilinear", align_corners=False)


def image_shape(image: object) -> tuple[int, ...]:
    """Shape of an array-like or PIL image, for error messages."""
    if isinstance(image, Image.Image):
        return (image.size[1], image.size[0], len(image.getbands()))
    return tuple(getattr(image, "shape", ()))
