"""Synthetic test images: a few flat shapes on a gradient, deterministic."""

from __future__ import annotations

import numpy as np


def shapes_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image H, W, 3 with a disc, a rectangle and a triangle on a smooth background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    image[..., 0] = 40 + 60 * xx / width
    image[..., 1] = 60 + 50 * yy / height
    image[..., 2] = 90
    cy, cx, r = 0.35 * height, 0.3 * width, 0.18 * min(height, width)
    image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = (220, 40, 40)
    image[int(0.55 * height) : int(0.85 * height), int(0.5 * width) : int(0.9 * width)] = (30, 200, 60)
    tri = (yy > 0.1 * height) & (xx - 0.6 * width > -(yy - 0.1 * height) * 0.5) & (xx < 0.85 * width)
    tri &= yy < 0.45 * height
    image[tri] = (240, 230, 50)
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
