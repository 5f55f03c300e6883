"""Loading the one video predictor the app shares between sessions, and choosing the precision it runs in,
with a message a person can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model.errors import CheckpointError, ModelNotAvailableError
from model.loading.precision import PRECISION_ENV, Precision, resolve_precision
from sam2_ui.predictor import predictor_device

DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"


class ModelLoadError(SystemExit):
    """The weights could not be found or read; the message says how to get them."""


def load_predictor(
    model_id: str = DEFAULT_MODEL,
    checkpoint: str | Path | None = None,
    config: str | None = None,
    device: str = "auto",
    image_size: int | None = None,
    **predictor_options: Any,
):
    """A ``SAM2VideoPredictor`` from a local official checkpoint, or from the Hugging Face hub (cached).

    ``predictor_options`` go to ``build_sam2_video_predictor`` (``apply_postprocessing``,
    ``non_overlap_masks``, ...).
    """
    from model import build_sam2_video_predictor
    from model.video.video_predictor import SAM2VideoPredictor

    try:
        if checkpoint is not None:
            checkpoint = Path(checkpoint)
            if not checkpoint.is_file():
                raise ModelLoadError(
                    f"There is no checkpoint file at {checkpoint}: check the --checkpoint path."
                )
            return build_sam2_video_predictor(
                config or _config_from_filename(checkpoint),
                checkpoint,
                device=device,
                image_size=image_size,
                **predictor_options,
            )
        kwargs = {} if image_size is None else {"image_size": image_size}
        return SAM2VideoPredictor.from_pretrained(model_id, device=device, **kwargs, **predictor_options)
    except ModelNotAvailableError as error:
        raise ModelLoadError(
            f"Cannot load {model_id}: {error}\nRun once with internet access so the weights are cached, or "
            "download an official checkpoint (e.g. sam2.1_hiera_tiny.pt from "
            "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt) and pass "
            "--checkpoint PATH."
        ) from error
    except CheckpointError as error:
        raise ModelLoadError(f"Cannot use the checkpoint: {error}") from error


def choose_precision(requested: str, predictor: Any) -> Precision:
    """``--precision`` resolved for the predictor's device: "auto" is bf16 where the device has fast bf16
    (``$SAM2_UI_PRECISION`` replaces "auto"), else fp32; "bf16" where it has none stops with a message."""
    try:
        return resolve_precision(requested, predictor_device(predictor))
    except ValueError as error:
        raise ModelLoadError(
            f"Cannot run in that precision: {error} (from --precision or ${PRECISION_ENV})"
        ) from error


def _config_from_filename(path: Path) -> str:
    from model.loading.configs import CONFIGS

    if path.stem in CONFIGS:
        return path.stem
    raise ModelLoadError(
        f"Cannot tell the model size from the file name {path.name}: pass --config "
        f"(one of {', '.join(CONFIGS)})."
    )
