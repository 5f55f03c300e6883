"""Loading the one video predictor the app shares between sessions, and choosing the precision it runs in,
with a message a person can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model.errors import CheckpointError, ModelNotAvailableError
from model.loading.precision import PRECISION_ENV, Precision, resolve_precision
from sam2_ui.engine.predictor import predictor_device

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

    A checkpoint is built as ``config`` when one is given; without it, as the model its file name names
    (``sam2.1_hiera_tiny.pt``) or else as the official model its weights' shapes match (`checkpoint_config`).

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
                _checked_config(config) if config else checkpoint_config(checkpoint),
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


def checkpoint_config(path: Path) -> str:
    """The config of an official-format checkpoint given without ``--config``: its file name when that is a
    config name (``sam2.1_hiera_tiny.pt``), else the official model its weights' shapes match.

    Raises:
        ModelLoadError: the file cannot be read, or its weights fit none of the eight official models; the
            message lists the config names to pass with ``--config``.
    """
    from model.loading.checkpoint import identify_config, read_checkpoint
    from model.loading.configs import CONFIGS

    if path.stem in CONFIGS:
        return path.stem
    # The weights are read once here and again by the builder; the second read is mostly from the page
    # cache, and this one's copy is freed on return.
    try:
        found = identify_config(read_checkpoint(path))
    except CheckpointError as error:
        raise ModelLoadError(
            f"Cannot use the checkpoint: {error}\nWithout --config the model size is read from the weights, "
            f"so the file must be a readable checkpoint; to choose the size yourself, pass --config (one of "
            f"{_config_names()})."
        ) from error
    if found is None:
        raise ModelLoadError(
            f"Cannot tell the model size of {path.name}: neither its name nor its weights' shapes match one "
            f"of the official SAM 2 / SAM 2.1 models. If you know which one it is, pass --config with its "
            f"name (one of {_config_names()}); loading then lists the weights that do not fit."
        )
    return found


def _checked_config(config: str) -> str:
    from model.loading.configs import resolve_config

    try:
        return resolve_config(config).name
    except ValueError as error:
        raise ModelLoadError(
            f"Unknown --config {config!r}: use one of {_config_names()} (or an official config name such as "
            "configs/sam2.1/sam2.1_hiera_t.yaml)."
        ) from error


def _config_names() -> str:
    from model.loading.configs import CONFIGS

    return ", ".join(CONFIGS)
