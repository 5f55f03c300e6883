"""Reading official SAM 2 checkpoints and loading them strictly, with errors a person can act on.

Official checkpoints are ``torch.save({"model": state_dict})`` files in fp32. We read them with
``weights_only=True`` (no arbitrary code runs), also accept a bare state dict or a ``.safetensors`` file, and
turn every failure into a ``CheckpointError`` that names the file and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from model.errors import CheckpointError, ModelNotAvailableError
from model.loading.configs import CONFIGS, SAM2Config, resolve_config

_URL_DIRS = {"2": "072824", "2.1": "092824"}  # the official release folders of SAM 2 and SAM 2.1
_SIZE_MB = {"tiny": 156, "small": 184, "base_plus": 323, "large": 898}  # the same for SAM 2 and 2.1
_SHOW = 5  # how many offending keys an error message lists


def official_url(config_name: str) -> str:
    """The official download URL of the checkpoint for one of the eight configs."""
    cfg = resolve_config(config_name)
    return f"https://dl.fbaipublicfiles.com/segment_anything_2/{_URL_DIRS[cfg.version]}/{cfg.checkpoint_filename}"


def expected_size_mb(filename: str) -> int | None:
    """Approximate size in MB of an official checkpoint file name, or None for other names."""
    for cfg in CONFIGS.values():
        if cfg.checkpoint_filename == filename:
            return _SIZE_MB[cfg.name.split("_hiera_", 1)[1]]
    return None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a SAM 2 checkpoint into a state dict on the CPU.

    Arguments:
        path: an official ``.pt`` file (``{"model": state_dict}``), a file holding a bare state dict, or a
            ``.safetensors`` file (needs the optional ``safetensors`` package).
    Returns:
        parameter name -> tensor.
    Raises:
        ModelNotAvailableError: nothing at ``path``.
        CheckpointError: the file is truncated, corrupt, not a checkpoint, or holds something else.
    """
    path = Path(path)
    if not path.exists():
        raise ModelNotAvailableError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory; pass the checkpoint file inside it (e.g. sam2.1_hiera_tiny.pt)"
        )
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file fails in many ways (a text file can give KeyError)
        raise _unreadable(path, exc) from exc
    return _state_dict_of(content, path)


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise CheckpointError(
            f"{path} is a .safetensors file; reading it needs the optional package: pip install safetensors"
        ) from exc
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types, which vary between versions
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    """The error for a file that cannot be read: a cut-off download, foreign objects, or no checkpoint."""
    with open(path, "rb") as f:
        head = f.read(64)
    size_mb = path.stat().st_size / 1e6
    if head.startswith(b"version https://git-lfs"):
        return CheckpointError(
            f"{path} is a Git LFS pointer, not the checkpoint itself. Fetch the real file "
            "(git lfs pull) or download it again."
        )
    # torch.save writes a zip archive (PK) or, in the legacy format, a pickle (0x80); an empty file is a
    # download that never started.
    looks_like_torch = head.startswith((b"PK", b"\x80"))
    if looks_like_torch and "weights only load failed" in str(exc).lower():
        return CheckpointError(
            f"{path} holds Python objects besides tensors, so it is not a SAM 2 checkpoint. Official "
            'checkpoints hold only {"model": state_dict}; re-save yours with '
            'torch.save({"model": model.state_dict()}, path).'
        )
    if not head or looks_like_torch or path.suffix == ".safetensors":
        expected = expected_size_mb(path.name)
        size_hint = f"; an official {path.name} is about {expected} MB" if expected else ""
        return CheckpointError(
            f"{path} looks truncated or corrupt: it cannot be read (the file is {size_mb:.1f} MB"
            f"{size_hint}). Delete it and download it again."
        )
    kind = (
        "an HTML page" if head.lstrip().lower().startswith((b"<!doctype", b"<html")) else "not a PyTorch file"
    )
    return CheckpointError(
        f"{path} is not a SAM 2 checkpoint ({kind}, {size_mb:.3f} MB). If it came from a download, the "
        "download likely failed: fetch the .pt file again."
    )


def _state_dict_of(content: object, path: Path) -> dict[str, Tensor]:
    """The state dict inside what torch.load returned, or a CheckpointError saying what is there instead."""
    if not isinstance(content, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(content).__name__}, not a checkpoint: expected a dict "
            '{"model": state_dict} as in the official SAM 2 files.'
        )
    if "model" in content:
        state = content["model"]
        if not isinstance(state, Mapping):
            raise CheckpointError(f'{path}: the "model" entry is a {type(state).__name__}, not a state dict.')
    elif content and all(isinstance(v, Tensor) for v in content.values()):
        state = content  # a bare state dict, e.g. saved with torch.save(model.state_dict(), path)
    else:
        keys = ", ".join(repr(k) for k in list(content)[:_SHOW]) or "none"
        raise CheckpointError(
            f'{path} has no "model" entry (top-level keys: {keys}); an official SAM 2 checkpoint is '
            '{"model": state_dict}.'
        )
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        examples = ", ".join(map(str, bad[:_SHOW]))
        raise CheckpointError(f"{path}: {len(bad)} state dict entries are not tensors (e.g. {examples}).")
    return dict(state)


def identify_config(state_dict: Mapping[str, Tensor]) -> str | None:
    """The name of the official config whose weights these are, judged from shapes; None if none fits.

    The trunk width (patch embedding) and block count tell the size; SAM 2.1's extra parameters
    (``no_obj_embed_spatial``, ``obj_ptr_tpos_proj``) tell the version.
    """
    patch = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None or patch.dim() != 4:
        return None
    prefix = "image_encoder.trunk.blocks."
    blocks = {k[len(prefix) :].split(".", 1)[0] for k in state_dict if k.startswith(prefix)}
    version = (
        "2.1" if "no_obj_embed_spatial" in state_dict or "obj_ptr_tpos_proj.weight" in state_dict else "2"
    )
    for cfg in CONFIGS.values():
        if cfg.version == version and cfg.embed_dim == patch.shape[0] and sum(cfg.stages) == len(blocks):
            return cfg.name
    return None


def load_into(model: nn.Module, state_dict: Mapping[str, Tensor], config_name: str | SAM2Config) -> None:
    """Load ``state_dict`` into ``model`` strictly: every key present, none extra, every shape equal.

    Arguments:
        model: the module built for ``config_name``.
        state_dict: as returned by ``read_checkpoint``.
        config_name: the config the model was built from; only used to explain a mismatch.
    Raises:
        CheckpointError: naming the missing, unexpected and mis-shaped keys, and the config to pass
            instead when the checkpoint looks like another official model.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {list(v.shape)} vs model {list(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(_mismatch_message(state_dict, config_name, missing, unexpected, mismatched))
    model.load_state_dict(state_dict, strict=True)


def _mismatch_message(
    state_dict: Mapping[str, Tensor],
    config_name: str | SAM2Config,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
) -> str:
    try:
        built = resolve_config(config_name).name
    except ValueError:
        built = str(config_name)
    problems = []
    groups = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
    for label, items in groups:
        if items:
            more = f", ... {len(items) - _SHOW} more" if len(items) > _SHOW else ""
            problems.append(f"{len(items)} {label} ({'; '.join(items[:_SHOW])}{more})")
    lines = [f"the checkpoint does not fit the model built as {built}: " + ", ".join(problems) + "."]
    found = identify_config(state_dict)
    if found is not None and found != built:
        lines.append(
            f"This checkpoint looks like {found} (SAM {CONFIGS[found].version}), but the model was built as "
            f"{built}; pass config={found!r}."
        )
    elif found == built:
        lines.append(f"The checkpoint's shapes match {built}, so the model code and the checkpoint disagree.")
    elif len(unexpected) == len(state_dict):
        lines.append(
            "None of its keys belong to SAM 2: it is not an official SAM 2 / SAM 2.1 checkpoint (a "
            "transformers, ONNX or fine-tuning export needs converting first)."
        )
    else:
        lines.append("It does not look like any of the eight official SAM 2 / SAM 2.1 checkpoints.")
    return " ".join(lines)
