"""What ``benchmarks.compare`` measures on: both implementations on the same weights, the clips, and timing.

Both sides load one set of seeded random weights: the official model is built with random weights, written
as an official checkpoint (``{"model": state_dict}``), and ours loads that file through its normal loading
path. The official side is built from the same file with the official builders. Postprocessing is off on
both sides (the official hole filling needs its CUDA extension; without it, it is silently skipped).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.video_memory import write_clip
from model import SAM2ImagePredictor, build_sam2, build_sam2_video_predictor
from model.loading.configs import resolve_config
from model.network.attention import fast_bf16_cpu_attention
from tests.support.video_clips import POLE_X0, POLE_X1, make_clip, write_jpeg_folder

SIDES = ("ours", "official")
GIB = 2**30


@dataclass
class Side:
    """One implementation: its image predictor and its video predictor (same weights)."""

    name: str
    image: Any  # ours: model.SAM2ImagePredictor; official: sam2.sam2_image_predictor.SAM2ImagePredictor
    video: Any  # ours: model.SAM2VideoPredictor; official: sam2.sam2_video_predictor.SAM2VideoPredictor


# ---------------------------------------------------------------------------------------------- models


def config_name(size: str, family: str = "sam2.1") -> str:
    """Our config name for a model size: ``config_name("tiny") == "sam2.1_hiera_tiny"``."""
    return f"{family}_hiera_{size}"


def write_official_checkpoint(config: str, path: Path, seed: int = 0) -> Path:
    """Seeded random official weights, saved exactly as the official checkpoints are laid out.

    The weights do not depend on the input resolution, so one file serves every ``image_size``.
    """
    from tests.support.official_ref import build_official, save_official_checkpoint

    official = build_official(config, seed=seed, video=True)
    path = save_official_checkpoint(official, path)
    del official
    gc.collect()
    return path


def build_ours(
    config: str, checkpoint: Path, image_size: int, device: str, vos_optimized: bool = False
) -> Side:
    """Our image and video predictors, through the public API, from an official-format checkpoint."""
    common = dict(device=device, image_size=image_size, apply_postprocessing=False)
    video = build_sam2_video_predictor(config, checkpoint, vos_optimized=vos_optimized, **common)
    image = SAM2ImagePredictor(build_sam2(config, checkpoint, **common))
    return Side("ours", image, video)


def build_official_side(
    config: str, checkpoint: Path, image_size: int, device: str, vos_optimized: bool = False
) -> Side:
    """The official ``sam2==1.1.0`` image and video predictors, built by its own builders from the file."""
    from sam2.build_sam import build_sam2 as official_build_sam2
    from sam2.build_sam import build_sam2_video_predictor as official_build_video
    from sam2.sam2_image_predictor import SAM2ImagePredictor as OfficialImagePredictor

    silence_official_progress_bars()
    official_config = resolve_config(config).official_config
    common = dict(
        device=device,
        hydra_overrides_extra=[f"++model.image_size={image_size}"],
        apply_postprocessing=False,
    )
    video = official_build_video(official_config, str(checkpoint), vos_optimized=vos_optimized, **common)
    image = OfficialImagePredictor(official_build_sam2(official_config, str(checkpoint), **common))
    # The official image predictor hard-codes the feature sizes of a 1024 input; other sizes need theirs.
    image._bb_feat_sizes = [(image_size // stride,) * 2 for stride in (4, 8, 16)]
    return Side("official", image, video)


def silence_official_progress_bars() -> None:
    """Turn off the official frame-loading and propagation progress bars, which would garble the output."""
    import sam2.sam2_video_predictor
    import sam2.utils.misc

    for module in (sam2.sam2_video_predictor, sam2.utils.misc):
        if not isinstance(module.tqdm, functools.partial):
            module.tqdm = functools.partial(module.tqdm, disable=True)


def build_sides(
    config: str, checkpoint: Path, image_size: int, device: str, vos_optimized: bool = False
) -> dict[str, Side]:
    """``{"ours": Side, "official": Side}`` on the same weights, in the order runs alternate."""
    return {
        "ours": build_ours(config, checkpoint, image_size, device, vos_optimized),
        "official": build_official_side(config, checkpoint, image_size, device, vos_optimized),
    }


# ---------------------------------------------------------------------------------------------- timing


@contextlib.contextmanager
def precision_context(device: str, precision: str) -> Iterator[None]:
    """Inference mode, plus bf16 autocast for ``"bf16"`` (how the official scripts run, with TF32 for the
    matmuls left in fp32 on CUDA, as they set it); ``"fp32"`` runs plain. On the CPU, bf16 also switches on
    our bf16 attention kernel, as the engine's bf16 mode does (`model.loading.precision.inference_autocast`);
    it touches only our side."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', not {precision!r}")
    bf16 = precision == "bf16"
    with (
        torch.inference_mode(),
        torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16),
        tf32_matmuls(enabled=bf16 and device == "cuda"),
        fast_bf16_cpu_attention(enabled=bf16 and device == "cpu"),
    ):
        yield


@contextlib.contextmanager
def tf32_matmuls(enabled: bool) -> Iterator[None]:
    """TF32 matmuls on CUDA while inside (when ``enabled``); the previous settings come back after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it (nothing to do on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> float:
    """Wall seconds of ``fn()``, synchronised before and after on CUDA."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def release(device: str) -> None:
    """Free what the last run left behind before the next one starts."""
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def available_ram_bytes() -> int | None:
    """``MemAvailable`` of this machine, or None where ``/proc/meminfo`` is missing."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def official_preload_bytes(num_frames: int, image_size: int) -> int:
    """What the official ``init_state`` holds for a clip: every frame as fp32 3 x S x S."""
    return num_frames * 3 * image_size * image_size * 4


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


# ---------------------------------------------------------------------------------------------- clips


@dataclass
class TrackClip:
    """A short JPEG clip for the tracking rows, with the clicks to make on it.

    object_points: (x, y) on frame 0 of the disc, the block and the pole (objects 1, 2, 3).
    corrections: (x, y, label) clicks on ``click_frame`` for object 1: a positive one inside the disc, then
    negative (background) and positive (disc) in turn.
    """

    folder: Path
    num_frames: int
    object_points: list[tuple[float, float]]
    click_frame: int
    corrections: list[tuple[float, float, int]] = field(default_factory=list)


def write_track_clip(folder: Path, num_frames: int, width: int, height: int, click_frame: int, clicks: int):
    """Render and write the tracking clip (a few frames, held in memory while rendering)."""
    if not 0 < click_frame < num_frames:
        raise ValueError(f"the correction frame {click_frame} must be a tracked frame in 1..{num_frames - 1}")
    clip = make_clip(num_frames=num_frames, height=height, width=width)
    write_jpeg_folder(clip, folder)
    pole = ((POLE_X0 + POLE_X1) / 2 * width, 0.5 * height)
    points = [clip.centre("disc", 0), clip.centre("block", 0), pole]
    rng = np.random.default_rng(0)
    disc = np.argwhere(clip.mask("disc", click_frame))
    covered = np.zeros((height, width), bool)
    for name in ("disc", "block", "kite"):
        covered |= clip.mask(name, click_frame)
    background = np.argwhere(~covered)
    corrections = [(*clip.centre("disc", click_frame), 1)]
    for k in range(1, clicks):
        pool, label = (background, 0) if k % 2 else (disc, 1)
        y, x = pool[rng.integers(len(pool))]
        corrections.append((float(x), float(y), label))
    return TrackClip(folder, num_frames, points, click_frame, corrections)


def write_open_clip(
    folder: Path, num_frames: int, width: int, height: int
) -> tuple[Path, tuple[float, float]]:
    """A long JPEG clip written one frame at a time (little memory): the folder and a click on frame 0."""
    return write_clip(folder, num_frames, height, width)


def sample_image(width: int = 1280, height: int = 720) -> tuple[np.ndarray, tuple[float, float]]:
    """H, W, 3 uint8 RGB image for the image rows and a click inside an object on it."""
    clip = make_clip(num_frames=2, height=height, width=width)
    return clip.frames[0], clip.centre("disc", 0)
