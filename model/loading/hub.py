"""Fetching official checkpoints by Hugging Face id, working offline from the local hub cache.

The eight ids are the official ones (``facebook/sam2.1-hiera-tiny`` ...). Files go through
``huggingface_hub`` so they land in, and are found in, the cache every other Hugging Face tool uses.
"""

from __future__ import annotations

import os
from pathlib import Path

from model.errors import CheckpointError, ModelNotAvailableError
from model.loading.checkpoint import identify_config, official_url, read_checkpoint
from model.loading.configs import CONFIGS

HF_MODELS: dict[str, tuple[str, str]] = {
    cfg.hf_id: (name, cfg.checkpoint_filename) for name, cfg in CONFIGS.items()
}
"""Hugging Face id -> (our config name, checkpoint file name in that repository)."""


def locate_checkpoint(model: str | os.PathLike) -> tuple[str, Path]:
    """(config name, local path) of a checkpoint given as a Hugging Face id or as a file.

    A file keeps the official name (``sam2.1_hiera_tiny.pt``) or is recognised from its weights' shapes;
    an id goes through `download_checkpoint` (the hub, or its cache offline).
    """
    path = Path(model).expanduser()
    if path.is_file():
        name = path.stem if path.stem in CONFIGS else identify_config(read_checkpoint(path))
        if name is None:
            raise CheckpointError(
                f"{path} does not hold the weights of any official SAM 2 model: pass a config name with "
                "build_sam2(config, checkpoint) if it is a fine-tuned model of another shape."
            )
        return name, path
    key = str(model).strip()
    if key not in HF_MODELS and (path.suffix in (".pt", ".pth", ".safetensors") or os.sep in key[1:]):
        raise ModelNotAvailableError(
            f"There is no checkpoint file at {path}: check the path, or use a Hugging Face id such as "
            "'facebook/sam2.1-hiera-tiny'."
        )
    return download_checkpoint(key)


def download_checkpoint(
    model_id: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> tuple[str, Path]:
    """Return the config name and local path of an official checkpoint, downloading it if needed.

    Arguments:
        model_id: one of ``HF_MODELS``, e.g. ``"facebook/sam2.1-hiera-tiny"``.
        revision: a branch, tag or commit of the Hugging Face repository (default: main).
        cache_dir: the hub cache to use (default: huggingface_hub's, ``HF_HUB_CACHE``).
    Returns:
        (config name such as ``"sam2.1_hiera_tiny"``, path of the file in the cache).
    Raises:
        ValueError: ``model_id`` is not one of the eight official ids.
        ModelNotAvailableError: the file is not cached and cannot be downloaded.
    """
    from huggingface_hub import constants, hf_hub_download  # imported late: only this path needs it

    key = model_id.strip()
    if key not in HF_MODELS:
        known = ", ".join(HF_MODELS)
        raise ValueError(f"unknown SAM 2 model id {model_id!r}; use one of: {known}")
    config_name, filename = HF_MODELS[key]
    kwargs = {"repo_id": key, "filename": filename, "revision": revision, "cache_dir": cache_dir}
    try:
        return config_name, Path(hf_hub_download(**kwargs))
    # Whatever stopped the download (no network, offline mode, proxy, Hub outage), a cached copy is
    # still the right answer, so look in the cache before giving up.
    except Exception as exc:
        first_error = exc
    try:
        return config_name, Path(hf_hub_download(**kwargs, local_files_only=True))
    except Exception:
        pass
    searched = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    where = f" at revision {revision!r}" if revision else ""
    reason = (
        str(first_error).strip().splitlines()[0] if str(first_error).strip() else type(first_error).__name__
    )
    raise ModelNotAvailableError(
        f"{key}: {filename}{where} is not in the Hugging Face cache ({searched}) and could not be downloaded "
        f"({reason}). To fix: connect to the internet once so it is downloaded and cached, or download "
        f"{official_url(config_name)} yourself and pass its path, "
        f"build_sam2({config_name!r}, checkpoint='/path/to/{filename}')."
    ) from first_error
