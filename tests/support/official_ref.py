"""Test-only access to the official implementation (PyPI ``sam2==1.1.0``) on random weights.

Nothing outside ``tests/`` and ``benchmarks/`` may import the official package. A missing package is an
error here, never a skip: the parity tests are part of the suite.
"""

from __future__ import annotations

import torch

from model.loading.configs import resolve_config
from tests.support.checkpoints import save_official_checkpoint  # noqa: F401  (kept here for the parity tests)

try:
    import sam2  # noqa: F401  (the official package)
    from sam2.build_sam import build_sam2 as official_build_sam2
    from sam2.build_sam import build_sam2_video_predictor as official_build_video
except ImportError as exc:  # pragma: no cover - CI must install it
    raise ImportError(
        "The parity tests need the official reference: "
        "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0"
    ) from exc


def randomize_(module: torch.nn.Module, seed: int = 0, scale: float = 0.02) -> torch.nn.Module:
    """Perturb every parameter and buffer with seeded noise, so zero/one initialisations are tested too."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, tensor in sorted(module.state_dict().items()):
            if tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float32) * scale
                tensor.add_(noise.to(tensor.dtype))
    return module


def build_official(
    config: str,
    image_size: int | None = None,
    seed: int = 0,
    video: bool = False,
    apply_postprocessing: bool = False,
    overrides: tuple[str, ...] = (),
) -> torch.nn.Module:
    """The official model for one of our config names, on CPU in fp32, with seeded random weights."""
    cfg = resolve_config(config)
    extra = list(overrides)
    if image_size is not None:
        extra.append(f"++model.image_size={image_size}")
    builder = official_build_video if video else official_build_sam2
    torch.manual_seed(seed)
    model = builder(
        cfg.official_config,
        None,
        device="cpu",
        hydra_overrides_extra=extra,
        apply_postprocessing=apply_postprocessing,
    )
    randomize_(model, seed)
    return model.eval()


def rel_max_abs_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max |ref| (the tolerance measure of the parity tests)."""
    ours = ours.detach().float()
    ref = ref.detach().float()
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != official {tuple(ref.shape)}"
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
