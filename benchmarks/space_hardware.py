"""Seconds per click and per tracked frame of the app's engine, for a Space owner choosing hardware and size.

    python -m benchmarks.space_hardware [--image-sizes 1024 512] [--frames 8] [--workers none reuse fresh]

SAM 2.1 tiny (random weights: the time does not depend on them) on a 640x360 clip with two objects, on this
machine's CPU. Rows per image size and per place the model calls run: "none" in the app's process (CPU Space
hardware), "reuse"/"fresh" in a forked worker as on ZeroGPU (`ForkedGPU`; on a real ZeroGPU Space the worker
has a GPU, so only the overhead carries over). Medians of the repeated steps:

- first click: a positive point on a frame not yet seen (its image is encoded);
- next click: a correction on the same frame;
- tracked frame: seconds per frame of "track forward" over the clip, two objects.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

WIDTHS = (10, 12, 14, 13, 16)


def clip(folder: Path, frames: int) -> Path:
    from tests.support.session_helpers import make_frames, write_mp4

    return write_mp4(make_frames(frames, 360, 640), folder / "clip.mp4", 10)


def measure(path: Path, image_size: int, workers: str, frames: int) -> dict[str, float]:
    from model import build_sam2_video_predictor
    from sam2_ui import Session
    from sam2_ui.engine.forked_gpu import ForkedGPU
    from sam2_ui.engine.model_worker import serve
    from sam2_ui.engine.worker_executor import WorkerExecutors

    torch.manual_seed(0)
    predictor = build_sam2_video_predictor("sam2.1_hiera_tiny", None, device="cpu", image_size=image_size)
    gpu = None if workers == "none" else ForkedGPU(workers)
    executor = None if gpu is None else WorkerExecutors(gpu(serve), predictor)
    first, second = [], []
    with Session.open(path, predictor, executor=executor, precision="fp32") as session:
        ball, block = session.add_object("ball"), session.add_object("block")
        sx, sy = 640 / 96, 360 / 64  # make_frames draws the disc and block in 96x64 units
        for frame in range(min(3, frames)):
            began = time.perf_counter()
            session.add_point(frame, ball, (20 + 8 * frame) * sx, 22 * sy)
            first.append(time.perf_counter() - began)
            began = time.perf_counter()
            session.add_point(frame, block, (76.5 - 6 * frame) * sx, 46.5 * sy)
            second.append(time.perf_counter() - began)
        session.clear(frame=1)
        session.clear(frame=2)
        began, stamps = time.perf_counter(), []
        for _ in session.propagate("forward", start=0):
            stamps.append(time.perf_counter())
    if gpu is not None:
        gpu.shutdown()
    per_frame = np.diff([began, *stamps])[1:]  # the first frame is the prompted one (no tracking)
    return {
        "first_click_s": statistics.median(first),
        "next_click_s": statistics.median(second),
        "tracked_frame_s": float(np.median(per_frame)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.space_hardware", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[1024, 512])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--workers", nargs="+", default=["none"], choices=["none", "reuse", "fresh"])
    args = parser.parse_args(argv)
    print(f"torch threads: {torch.get_num_threads()}")
    header = ("image size", "model calls", "first click s", "next click s", "s/tracked frame")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, WIDTHS)))
    with tempfile.TemporaryDirectory() as folder:
        path = clip(Path(folder), args.frames)
        for size in args.image_sizes:
            for workers in args.workers:
                row = measure(path, size, workers, args.frames)
                where = "in process" if workers == "none" else f"worker {workers}"
                keys = ("first_click_s", "next_click_s", "tracked_frame_s")
                cells = (size, where, *(f"{row[k]:.2f}" for k in keys))
                print(" ".join(f"{c:>{w}}" for c, w in zip(cells, WIDTHS)), flush=True)


if __name__ == "__main__":
    main()
