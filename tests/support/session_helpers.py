"""Shared pieces of the session engine tests: one small random-weight predictor, tiny clips, state checks.

The predictor is SAM 2.1 tiny at image_size 256 with random weights (seeded), built once per test process.
Random weights score objects near zero, so the object score bias is raised to keep masks present (as the
video tests do). Clips are 6 frames of 64 x 96: a red disc moving right and a green block moving left over a
gradient.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image

NUM_FRAMES, HEIGHT, WIDTH = 6, 64, 96
DISC_RADIUS = 11


@functools.lru_cache(maxsize=1)
def predictor():
    from model import build_sam2_video_predictor

    torch.manual_seed(0)
    video_predictor = build_sam2_video_predictor(
        "sam2.1_hiera_tiny",
        None,
        device="cpu",
        image_size=256,
        apply_postprocessing=False,
        feature_cache_size=NUM_FRAMES + 2,  # each frame is encoded once per session
    )
    with torch.no_grad():
        video_predictor.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 5.0
    return video_predictor


def disc_centre(t: int) -> tuple[float, float]:
    return 20.0 + 8 * t, 22.0


def block_box(t: int) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 of the block on frame t (inclusive pixel extent)."""
    x0 = 70 - 6 * t
    return float(x0), 38.0, float(x0 + 13), 55.0


def make_frames(num_frames: int = NUM_FRAMES, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """T, H, W, 3 uint8 frames (the disc and block scale with the frame size)."""
    sy, sx = height / HEIGHT, width / WIDTH
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        image = frames[t]
        image[..., 0] = 40 + xx * 60 // width
        image[..., 1] = 60 + yy * 50 // height
        image[..., 2] = 90
        cx, cy = disc_centre(t)
        image[((xx / sx - cx) ** 2 + (yy / sy - cy) ** 2) < DISC_RADIUS**2] = (220, 40, 40)
        x0, y0, x1, y1 = block_box(t)
        image[int(y0 * sy) : int((y1 + 1) * sy), int(x0 * sx) : int((x1 + 1) * sx)] = (30, 200, 60)
    return frames


def write_png_folder(frames: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t:05d}.png")
    return folder


def write_mp4(frames: np.ndarray, path: Path, fps: int) -> Path:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def all_masks(session) -> dict[tuple[int, int], np.ndarray]:
    """(frame, object) -> mask over the whole session."""
    return {(f, o): m for f in range(session.num_frames) for o, m in session.masks(f).items()}


def assert_same_masks(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b), f"different (frame, object) keys: {sorted(a)} vs {sorted(b)}"
    for key in a:
        assert np.array_equal(a[key], b[key]), f"mask {key} differs"


def state_of(session) -> dict:
    """Everything a user can observe about a session, in comparable form."""
    from sam2_ui.engine.prompts import action_to_json

    return {
        "objects": session.objects,
        "selected": session.selected,
        "log": [action_to_json(a) for a in session.prompt_log],
        "masks": {k: np.packbits(m).tobytes() for k, m in all_masks(session).items()},
        "stale": session.stale_frames(),
        "can_undo": session.can_undo,
        "can_redo": session.can_redo,
        "prompted": session.prompted_frames(),
    }
