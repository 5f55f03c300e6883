"""SAM 2 / SAM 2.1 in plain PyTorch, loading the official checkpoints unchanged.

from model import build_sam2, SAM2ImagePredictor
predictor = SAM2ImagePredictor(build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"))

Names are loaded on first use, so ``import model.images.rle`` or ``model.loading.configs`` does not pull in
torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CheckpointError": "errors",
    "ModelNotAvailableError": "errors",
    "SAM2AutomaticMaskGenerator": "images.automatic_mask_generator",
    "SAM2ImagePredictor": "images.image_predictor",
    "build_sam2": "loading.build",
    "from_pretrained": "loading.build",
    "CONFIGS": "loading.configs",
    "SAM2Config": "loading.configs",
    "resolve_config": "loading.configs",
    "SAM2Model": "network.sam2",
    "SAM2VideoPredictor": "video.video_predictor",
    "build_sam2_video_predictor": "video.video_predictor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
