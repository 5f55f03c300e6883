"""Checkpoint files in the official layout, without the official package (``official_ref`` needs it)."""

from __future__ import annotations

from pathlib import Path

import torch


def save_official_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """Write ``{"model": state_dict}`` exactly as the official checkpoints are laid out."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path
