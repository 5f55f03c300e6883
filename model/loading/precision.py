"""Reduced precision: whether a device runs bf16 fast, which mode to use, and the autocast that runs it.

SAM 2 runs under ``torch.autocast(device, dtype=torch.bfloat16)`` as the official examples do on CUDA. Where
the hardware has native bf16 (CUDA compute capability 8.0 or newer; x86 CPUs with AVX-512 BF16 or AMX) that is
about twice the fp32 matmul rate; elsewhere bf16 is emulated and slower than fp32, so "auto" picks fp32 there.

    precision = resolve_precision("auto", "cpu")      # "bf16" on this CPU if it has AVX-512 BF16, else "fp32"
    with inference_autocast("cpu", precision):
        masks, scores, logits = predictor.predict(...)
    describe_precision("cpu", precision)              # "bf16 autocast on CPU (AVX-512 BF16)"
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Literal

import torch

from model.network.attention import fast_bf16_cpu_attention

Precision = Literal["fp32", "bf16"]
PRECISION_CHOICES = ("auto", "fp32", "bf16")
PRECISION_ENV = "SAM2_UI_PRECISION"
"""Environment variable that replaces a requested "auto" (e.g. ``SAM2_UI_PRECISION=fp32`` for exact fp32)."""


def fast_bf16(device: str | torch.device) -> str | None:
    """What gives ``device`` fast bf16 ("AVX-512 BF16", "AMX", "NVIDIA H100 ..."), or None if it has none.

    CUDA: compute capability 8.0 or newer (emulated bf16 on older GPUs does not count). CPU: AVX-512 BF16 or
    AMX tiles, with oneDNN available. MPS and anything else: None. Torch versions without the CPU checks
    (they are private helpers of ``torch.cpu``) report None, so "auto" stays fp32 there.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        index = device.index if device.index is not None else torch.cuda.current_device()
        if torch.version.hip is None and torch.cuda.get_device_capability(index) < (8, 0):
            return None
        return torch.cuda.get_device_name(index)
    if device.type == "cpu":
        if not torch.backends.mkldnn.is_available():
            return None
        if _cpu_check("_is_amx_tile_supported"):
            return "AMX"
        if _cpu_check("_is_avx512_bf16_supported"):
            return "AVX-512 BF16"
    return None


def _cpu_check(name: str) -> bool:
    check = getattr(torch.cpu, name, None)
    if check is None:
        return False
    try:
        return bool(check())
    except RuntimeError:  # a torch built without the CPU feature probe
        return False


def resolve_precision(requested: str = "auto", device: str | torch.device = "cpu") -> Precision:
    """The mode to run in: "bf16" or "fp32".

    Arguments:
      requested: "auto" (bf16 where ``device`` has fast bf16, else fp32; the ``SAM2_UI_PRECISION`` environment
        variable, if set, replaces "auto"), "fp32", or "bf16".
      device: the device the model runs on.
    Raises ``ValueError`` for an unknown mode, and for "bf16" on a device without fast bf16 (naming it).
    """
    mode = str(requested).strip().lower()
    source = "precision"
    if mode == "auto" and os.environ.get(PRECISION_ENV, "").strip():
        mode, source = os.environ[PRECISION_ENV].strip().lower(), PRECISION_ENV
    if mode not in PRECISION_CHOICES:
        raise ValueError(f"{source}={mode!r} is not a precision: use one of {', '.join(PRECISION_CHOICES)}.")
    supported = fast_bf16(device) is not None
    if mode == "auto":
        return "bf16" if supported else "fp32"
    if mode == "bf16" and not supported:
        raise ValueError(
            f"{source}='bf16' was requested but {_device_name(device)} has no fast bf16 (it needs a CUDA GPU "
            "of compute capability 8.0 or newer, or a CPU with AVX-512 BF16 or AMX); use 'auto' or 'fp32'."
        )
    return mode  # type: ignore[return-value]


def inference_autocast(device: str | torch.device, precision: Precision) -> AbstractContextManager:
    """The context to run the model in: nothing for fp32; for bf16, autocast on ``device``'s type and, on
    the CPU, the bf16 attention kernel (`model.network.attention.fast_bf16_cpu_attention`)."""
    if precision == "fp32":
        return nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be 'fp32' or 'bf16' (resolve 'auto' first), not {precision!r}")
    kind = torch.device(device).type
    stack = ExitStack()
    stack.enter_context(torch.autocast(kind, dtype=torch.bfloat16))
    if kind == "cpu":
        stack.enter_context(fast_bf16_cpu_attention())
    return stack


def describe_precision(device: str | torch.device, precision: Precision) -> str:
    """A line for people: "bf16 autocast on CPU (AVX-512 BF16)", "fp32 on CUDA", "fp32 on CPU (no fast bf16
    here)"."""
    where = _device_name(device)
    reason = fast_bf16(device)
    if precision == "bf16":
        return f"bf16 autocast on {where}" + (f" ({reason})" if reason else "")
    return f"fp32 on {where}" + ("" if reason else " (no fast bf16 here)")


def _device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    name = {"cpu": "CPU", "cuda": "CUDA", "mps": "Apple MPS"}.get(device.type, device.type)
    return name if device.index is None else f"{name}:{device.index}"
