"""Device choice and mixed-precision contexts."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; anything else is passed to ``torch.device``."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(device)!r} was requested but CUDA is not available here; use device='auto' or 'cpu'"
        )
    return resolved


def inference_autocast(
    device: torch.device, enabled: bool | None = None
) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (as the official runs use, with TF32 matmuls); a no-op elsewhere by default.

    ``enabled=True`` forces bf16 autocast on any device type that supports it (CPU included), which the
    tests use to mirror the official CUDA numerics.
    """
    device = torch.device(device)
    use = device.type == "cuda" if enabled is None else enabled
    if not use:
        return contextlib.nullcontext()
    if device.type == "cuda":
        # Ampere and newer: TF32 for the fp32 parts, as the official demos enable.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return torch.autocast(device.type, dtype=torch.bfloat16)
