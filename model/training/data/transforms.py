"""The augmentation of a training clip, the same across its frames: the official MOSE fine-tune recipe
(``sam2.1_hiera_b+_MOSE_finetune.yaml``), in its order:

1. horizontal flip (p 0.5), of every frame or none;
2. random affine: rotation up to 25 degrees and horizontal shear up to 20 degrees about the frame's centre,
   one draw for the clip; bilinear for images (the outside filled with the ImageNet mean), nearest for
   masks. As the official, the affine is dropped when it moves a first-frame object out of view;
3. resize to the square network input S x S (bilinear, antialiased; a mask pixel stays set when more than
   half of its bilinear weight is set);
4. colour jitter the same for all frames: brightness 0.1, contrast 0.03, saturation 0.03, in random order;
5. grayscale (p 0.05), of every frame or none;
6. colour jitter per frame: brightness 0.1, contrast 0.05, saturation 0.05.

Without augmentation only step 3 runs. Every random draw comes from the generator passed in, in a fixed
order, so the same generator state gives the same clip. Pillow does the pixel work as torchvision does on
PIL images (``ImageEnhance`` for the jitter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

# Brightness, contrast and saturation, in this order in the jitter settings and orders.
ENHANCERS = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
IMAGENET_MEAN_RGB = (123, 116, 103)  # the official affine's fill for the image outside the frame


@dataclass(frozen=True)
class AugmentSettings:
    """The strengths of each augmentation (0 turns one off). Defaults: the official MOSE fine-tune.

    ``clip_jitter`` and ``frame_jitter``: (brightness, contrast, saturation) strengths; each factor is drawn
    in ``[1 - strength, 1 + strength]``. Degrees are the largest rotation and shear either way.
    """

    hflip_prob: float = 0.5
    degrees: float = 25.0
    shear: float = 20.0
    fill: tuple[int, int, int] = IMAGENET_MEAN_RGB
    clip_jitter: tuple[float, float, float] = (0.1, 0.03, 0.03)
    grayscale_prob: float = 0.05
    frame_jitter: tuple[float, float, float] = (0.1, 0.05, 0.05)


class ClipTransforms:
    """Turns a clip's frames and masks at their own size into the square network input.

    Arguments:
        image_size: S, the side of the square output.
        augmentation: the augmentation's settings; None: resize only (validation, tests).
    """

    def __init__(self, image_size: int, augmentation: AugmentSettings | None = None) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be at least 1, got {image_size}")
        self.image_size = image_size
        self.augmentation = augmentation

    def __call__(
        self, frames: list[np.ndarray], masks: list[np.ndarray], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Transform a clip.

        Arguments:
            frames: T arrays of H, W, 3 uint8 RGB (frames of one video: usually one size).
            masks: T arrays of K, H, W bool, the objects' masks on each frame (the frame's size).
            rng: the clip's generator; untouched without augmentation.
        Returns:
            T, S, S, 3 uint8 frames and T, K, S, S bool masks.
        """
        images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
        masks = [np.asarray(m, dtype=bool) for m in masks]
        settings = self.augmentation
        if settings is not None:
            if rng.random() < settings.hflip_prob:
                images = [ImageOps.mirror(image) for image in images]
                masks = [m[:, :, ::-1] for m in masks]
            images, masks = self._affine(images, masks, settings, rng)
        size = self.image_size
        images = [image.resize((size, size), Image.Resampling.BILINEAR) for image in images]
        masks = [resize_masks(m, size) for m in masks]
        if settings is not None:
            images = _colour(images, settings, rng)
        return np.stack([np.asarray(image) for image in images]), np.stack(masks)

    @staticmethod
    def _affine(
        images: list[Image.Image],
        masks: list[np.ndarray],
        settings: AugmentSettings,
        rng: np.random.Generator,
    ) -> tuple[list[Image.Image], list[np.ndarray]]:
        """One random rotation and shear for the whole clip (or none, when it hides a first-frame object)."""
        angle = rng.uniform(-settings.degrees, settings.degrees)
        shear = rng.uniform(-settings.shear, settings.shear)
        if angle == 0 and shear == 0:
            return images, masks
        warped = [warp_masks(m, affine_coefficients(m.shape[2], m.shape[1], angle, shear)) for m in masks]
        if any(before.any() and not after.any() for before, after in zip(masks[0], warped[0])):
            return images, masks
        images = [
            image.transform(
                image.size,
                Image.Transform.AFFINE,
                affine_coefficients(image.width, image.height, angle, shear),
                resample=Image.Resampling.BILINEAR,
                fillcolor=settings.fill,
            )
            for image in images
        ]
        return images, warped


def affine_coefficients(width: int, height: int, angle: float, shear: float) -> tuple[float, ...]:
    """Pillow's AFFINE data for a rotation by ``angle`` and a horizontal shear by ``shear`` (degrees) about
    the image centre: the six coefficients mapping an output pixel back to where it is read in the input."""
    rotation, slant = math.radians(angle), math.radians(shear)
    forward = np.array(
        [[math.cos(rotation), -math.sin(rotation)], [math.sin(rotation), math.cos(rotation)]]
    ) @ np.array([[1.0, math.tan(slant)], [0.0, 1.0]])
    (a, b), (d, e) = np.linalg.inv(forward)
    cx, cy = width / 2, height / 2
    return (a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy)


def warp_masks(masks: np.ndarray, coefficients: tuple[float, ...]) -> np.ndarray:
    """K, H, W bool masks through an affine map (nearest neighbour; outside is background).

    Up to 8 masks travel as the bits of one uint8 image, so a frame costs one warp per 8 objects.
    """
    count, height, width = masks.shape
    out = np.zeros_like(masks)
    for start in range(0, count, 8):
        chunk = masks[start : start + 8]
        bits = np.zeros((height, width), np.uint8)
        for k, mask in enumerate(chunk):
            bits |= mask.astype(np.uint8) << k
        moved = Image.fromarray(bits).transform(
            (width, height),
            Image.Transform.AFFINE,
            coefficients,
            resample=Image.Resampling.NEAREST,
            fillcolor=0,
        )
        moved = np.asarray(moved)
        for k in range(len(chunk)):
            out[start + k] = (moved >> k) & 1 == 1
    return out


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """K, H, W bool -> K, S, S bool: bilinear (antialiased) and kept where more than half set, as the
    official resize of a 0/1 mask rounds it. Masks already S x S are returned as they are."""
    if masks.shape[1:] == (size, size):
        return masks
    out = np.empty((masks.shape[0], size, size), bool)
    for k, mask in enumerate(masks):
        grey = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.Resampling.BILINEAR)
        out[k] = np.asarray(grey) > 127
    return out


def _colour(
    images: list[Image.Image], settings: AugmentSettings, rng: np.random.Generator
) -> list[Image.Image]:
    """Steps 4-6: the clip's colour jitter, the clip's grayscale, then each frame's own jitter."""
    order, factors = _jitter_draw(settings.clip_jitter, rng)
    images = [_jitter(image, order, factors) for image in images]
    if rng.random() < settings.grayscale_prob:
        images = [ImageOps.grayscale(image).convert("RGB") for image in images]
    return [_jitter(image, *_jitter_draw(settings.frame_jitter, rng)) for image in images]


def _jitter_draw(
    strengths: tuple[float, float, float], rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, ...]]:
    """A random order of brightness, contrast and saturation, and a factor for each."""
    order = rng.permutation(3)
    factors = tuple(rng.uniform(max(0.0, 1 - s), 1 + s) for s in strengths)
    return order, factors


def _jitter(image: Image.Image, order: np.ndarray, factors: tuple[float, ...]) -> Image.Image:
    for op in order:
        if factors[op] != 1.0:
            image = ENHANCERS[op](image).enhance(factors[op])
    return image
