"""``torch.compile`` for the network's components, as the official ``vos_optimized`` predictor does.

Tracking runs the same five components on the same shapes frame after frame, which is what compilation (and,
on CUDA, CUDA graphs) rewards. Each component's ``forward`` is replaced by a compiled one, so its parameters,
state-dict keys and call signature stay as they are. Memory attention is compiled for dynamic shapes: its
number of memory tokens grows during the first frames of a run and varies with the prompted frames.

With CUDA graphs (``max-autotune`` on CUDA) a compiled function writes its outputs into buffers that its next
call overwrites, while our callers keep them (cached image features, memories in the bank): outputs are
cloned there. Results drift slightly from the eager ones, as with the official option.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

# (name on SAM2Model, compiled for dynamic shapes)
COMPONENTS: dict[str, bool] = {
    "image_encoder": False,
    "memory_encoder": False,
    "memory_attention": True,  # the number of memories varies
    "sam_prompt_encoder": False,  # the official found dynamic shapes less accurate for the two heads
    "sam_mask_decoder": False,
}
_COMPILED = "_sam2_compiled"  # set on a module whose forward was replaced


def compile_mode(device: torch.device) -> str:
    """``max-autotune`` (Triton kernels and CUDA graphs) on CUDA, inductor's default C++ kernels elsewhere."""
    return "max-autotune" if torch.device(device).type == "cuda" else "default"


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use for CPU kernels (``$CXX``, else c++, g++ or clang++), or None."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    return next((path for path in map(shutil.which, candidates) if path), None)


def clone_tensors(value: Any) -> Any:
    """``value`` with every tensor in it (in tuples, lists and dicts too) replaced by a copy."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(clone_tensors(item) for item in value)
    if isinstance(value, dict):
        return {key: clone_tensors(item) for key, item in value.items()}
    return value


def with_cloned_outputs(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` whose returned tensors are copies, safe to keep after its next call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return clone_tensors(function(*args, **kwargs))

    return call


def is_compiled(module: nn.Module) -> bool:
    return getattr(module, _COMPILED, False)


def compile_components(
    model: nn.Module,
    components: Iterable[str] = tuple(COMPONENTS),
    mode: str | None = None,
) -> list[str]:
    """Compile ``components`` of a ``SAM2Model`` in place; compilation itself happens at their first call.

    Arguments:
      model: the network, already on its device.
      components: names from ``COMPONENTS`` (all five by default).
      mode: the ``torch.compile`` mode; by default ``compile_mode(device)``.
    Returns:
      the names compiled now. Nothing is compiled, with a warning, where compilation cannot work: on a CPU
      without a C++ compiler, and on devices other than CUDA and CPU. Compiling twice is a no-op.
    """
    unknown = [name for name in components if name not in COMPONENTS]
    if unknown:
        raise ValueError(f"cannot compile {unknown}: the components are {list(COMPONENTS)}")
    device = next(model.parameters()).device
    reason = _why_not(device)
    if reason:
        warnings.warn(f"vos_optimized: {reason}; running the model uncompiled", RuntimeWarning, stacklevel=2)
        return []
    mode = mode or compile_mode(device)
    # CUDA graphs are part of these modes on CUDA; their outputs are overwritten by the next call.
    cuda_graphs = device.type == "cuda" and mode in ("max-autotune", "reduce-overhead")
    compiled = []
    for name in components:
        module = getattr(model, name)
        if is_compiled(module):
            continue
        forward = torch.compile(module.forward, mode=mode, fullgraph=True, dynamic=COMPONENTS[name])
        module.forward = with_cloned_outputs(forward) if cuda_graphs else forward
        setattr(module, _COMPILED, True)
        compiled.append(name)
    return compiled


def _why_not(device: torch.device) -> str | None:
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if device.type == "cpu" and cpp_compiler() is None:
        return "compiling for the CPU needs a C++ compiler (install g++ or clang, or set CXX)"
    if device.type not in ("cuda", "cpu"):
        return f"torch.compile is used on CUDA and CPU only, not on {device.type}"
    return None
