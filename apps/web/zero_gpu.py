"""ZeroGPU: whether the app runs on a Space that lends a GPU per call, and the executors that use it."""

from __future__ import annotations

import os
from typing import Any

from sam2_ui.engine.model_worker import serve
from sam2_ui.engine.worker_executor import WorkerExecutors, call_seconds


def on_zero_gpu() -> bool:
    """Whether the app runs where ``spaces.GPU`` lends a GPU per call (a Hugging Face ZeroGPU Space).

    Spaces set ``SPACES_ZERO_GPU`` on ZeroGPU hardware; the ``spaces`` package alone is also installed on
    Spaces with a GPU of their own, where state may stay on it.
    """
    try:
        import spaces  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def zero_gpu_executors(predictor: Any) -> WorkerExecutors:
    """Model calls of every session in ZeroGPU's forked GPU workers: ``spaces.GPU`` around the worker's one
    function, asking each call's own duration. Made before the app launches (ZeroGPU wants its GPU
    functions known by then, and workers forked later must find the model)."""
    import spaces  # type: ignore[import-not-found]

    return WorkerExecutors(spaces.GPU(duration=call_seconds)(serve), predictor)
