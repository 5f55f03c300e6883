"""``last.pt`` and ``best.pt``: checkpoints in the official file format, and resuming from ``last.pt``.

Both files are ``{"model": state_dict}`` as the official checkpoints are, so ``build_sam2(config, path)``,
the official ``sam2.build_sam.build_sam2``, the app's ``--checkpoint`` and the widget load them as they are.
``last.pt`` also holds ``"training"``: the step, the optimizer and schedule, the random states, the best
validation so far and the settings a resumed run must share, all plain tensors, numbers, strings, lists and
dicts, so ``torch.load(path, weights_only=True)`` reads the whole file.

A file is written next to its final name, flushed to the disk and renamed over it, so a crash while saving
(or soon after) leaves the previous checkpoint or the new one whole.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.finetune.arguments import SETTING_FLAGS
from apps.finetune.errors import FinetuneError

LAST, BEST = "last.pt", "best.pt"
FORMAT = 1
"""Version of the ``"training"`` entry of ``last.pt``."""


def save_atomically(payload: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, flushed to the disk, then renamed over ``path``
    (and the rename flushed too, where the OS can sync a folder).

    Without the flush before the rename, a power cut or a node lost soon after can leave ``path`` naming a
    file whose data never reached the disk: an empty or cut-short ``last.pt`` instead of the previous one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    _sync_folder(path.parent)
    return path


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to the disk; Windows cannot open a folder to do so."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems (network ones among them) refuse to sync a folder
        pass
    finally:
        os.close(descriptor)


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The network's weights as the official checkpoints hold them (on the CPU)."""
    return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}


def save_best(out: Path, model: torch.nn.Module) -> Path:
    return save_atomically({"model": model_state(model)}, Path(out) / BEST)


def save_last(out: Path, model: torch.nn.Module, training: dict[str, Any]) -> Path:
    return save_atomically({"model": model_state(model), "training": training}, Path(out) / LAST)


def training_entry(
    step: int,
    config: str,
    settings: dict[str, Any],
    trainer_state: dict[str, Any],
    best: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """The ``"training"`` entry of ``last.pt`` after ``step`` completed steps."""
    return {
        "format": FORMAT,
        "step": int(step),
        "config": config,
        "settings": settings,
        "optimizer": trainer_state["optimizer"],
        "schedule": trainer_state["schedule"],
        "rng": random_states(device),
        "best": dict(best),
    }


def read_last(out: Path) -> dict[str, Any] | None:
    """The contents of ``out/last.pt``, or None when there is none (a fresh run)."""
    path = Path(out) / LAST
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, not a torch file, made by a foreign tool: all unusable here
        raise FinetuneError(
            f"{path} cannot be read ({type(error).__name__}: {error}). Delete it to start over, or choose "
            "another --out."
        ) from None
    if not isinstance(saved, dict) or "model" not in saved or "training" not in saved:
        raise FinetuneError(
            f"{path} is not a checkpoint this command wrote (it has no training state to resume from). "
            "Choose another --out, or to fine-tune from it pass --checkpoint with another --out."
        )
    if saved["training"].get("format") != FORMAT:
        raise FinetuneError(f"{path} was written by another version of this command: choose another --out.")
    return saved


def check_same_settings(saved: dict[str, Any], current: dict[str, Any], out: Path) -> None:
    """Refuse to resume when the arguments that decide the steps differ from those of the saved run."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        before, now = saved.get(key), current.get(key)
        if _comparable(before) != _comparable(now):
            flag = SETTING_FLAGS.get(key, key)
            differences.append(f"  {flag}: {_show(before)} in the saved run, {_show(now)} now")
    if differences:
        raise FinetuneError(
            f"{Path(out) / LAST} was written by a run with other arguments:\n"
            + "\n".join(differences)
            + "\nRerun with the saved run's arguments to resume it, or choose another --out to start a new "
            "run (to continue from its weights with new arguments: --checkpoint "
            f"{Path(out) / LAST} --out NEW_DIR)."
        )


def _comparable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def _show(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], list):
        return ", ".join(f"{path} (weight {weight:g})" for path, weight in value)
    return "(none)" if value is None else str(value)


def random_states(device: torch.device) -> dict[str, Any]:
    """Python's, NumPy's and torch's random states (CPU, and the CUDA device in use) as plain values."""
    version, state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, list(state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_random_states(states: dict[str, Any], device: torch.device) -> None:
    """Put back what `random_states` saved (a CUDA state only onto a CUDA device)."""
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
