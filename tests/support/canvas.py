"""What a canvas does with `Layers`: draws the frame, then the masks, then the markers over it."""

from __future__ import annotations

import numpy as np

from sam2_ui.output.render import Layers


def composite(layers: Layers) -> np.ndarray:
    """The three layers flattened into one h, w, 3 uint8 image, as a canvas draws them (straight alpha)."""
    out = layers.frame.astype(np.float32)
    for layer in (layers.masks, layers.markers):
        alpha = layer[..., 3:].astype(np.float32) / 255.0
        out = out * (1.0 - alpha) + layer[..., :3].astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
