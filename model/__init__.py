"""SAM 2 / SAM 2.1 in plain PyTorch, loading the official checkpoints unchanged.

from model import build_sam2, SAM2ImagePredictor
predictor = SAM2ImagePredictor(build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"))
"""

from model.errors import CheckpointError, ModelNotAvailableError
from model.images.automatic_mask_generator import SAM2AutomaticMaskGenerator
from model.images.image_predictor import SAM2ImagePredictor
from model.loading.build import build_sam2, from_pretrained
from model.loading.configs import CONFIGS, SAM2Config, resolve_config
from model.network.sam2 import SAM2Model
from model.video.video_predictor import SAM2VideoPredictor, build_sam2_video_predictor

__all__ = [
    "CONFIGS",
    "CheckpointError",
    "ModelNotAvailableError",
    "SAM2AutomaticMaskGenerator",
    "SAM2Config",
    "SAM2ImagePredictor",
    "SAM2Model",
    "SAM2VideoPredictor",
    "build_sam2",
    "build_sam2_video_predictor",
    "from_pretrained",
    "resolve_config",
]
