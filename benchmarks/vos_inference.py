"""Seconds per frame of ``apps.vos.inference`` against the official predictor driven the same way.

Both sides run a generated palette-layout dataset end to end per video (``init_state``, the input masks,
propagation, writing the PNGs): ours through `apps.vos.runner.run_video`, the official ``sam2==1.1.0``
predictor through `tests.support.official_vos` (the official script's semantics). Same random weights (the
official model's, with the object score bias raised so masks stay present, written as an official
checkpoint that both sides load), alternating ours / official per video after one warm-up each. Prints
the per-video times, the medians, the ratio official / ours (our speed-up) and the mask IoU between them.

    python -m benchmarks.vos_inference                                  # 2 clips x 24 frames, 1280x720, 1024
    python -m benchmarks.vos_inference --image-size 512
    python -m benchmarks.vos_inference --mode later                     # one object at a time
    python -m benchmarks.vos_inference --frames 6 --frame-size 128x96 --image-size 256   # a smoke run

Only numbers from a quiet machine mean anything: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.compare_setup import load_average, precision_context, release, silence_official_progress_bars
from model.loading.configs import resolve_config
from tests.support.official_vos import official_vos_video
from tests.support.vos_datasets import CUSTOM_PALETTE, frames_dir, iou, masks_dir, write_palette_video

SIZES = ("tiny", "small", "base_plus", "large")


def _frame_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WxH, e.g. 1280x720") from None
    return width, height


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.vos_inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    parser.add_argument("--size", choices=SIZES, default="tiny", help="SAM 2.1 model size (default tiny)")
    parser.add_argument("--image-size", type=int, default=1024, help="model input size (1024; try 512)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="default: bf16 on CUDA (as the official script), else fp32",
    )
    parser.add_argument("--videos", type=int, default=2, help="generated clips (default 2)")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
    parser.add_argument("--frame-size", type=_frame_size, default=(1280, 720), help="WxH (default 1280x720)")
    parser.add_argument(
        "--mode",
        choices=("default", "later"),
        default="default",
        help="default: objects of frame 0 together; later: --track_object_appearing_later_in_video",
    )
    parser.add_argument("--repeats", type=int, default=1, help="measured passes over the clips (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    if args.frames < 4 or args.videos < 1 or args.repeats < 1:
        parser.error("need --frames >= 4 (the late object enters on frame 3), --videos >= 1, --repeats >= 1")
    return args


def write_checkpoint(config: str, path: Path, seed: int) -> Path:
    from tests.support.official_ref import build_official, save_official_checkpoint

    model = build_official(config, seed=seed, video=True)
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 5.0
    return save_official_checkpoint(model, path)


def build_both(config: str, checkpoint: Path, args: argparse.Namespace):
    from sam2.build_sam import build_sam2_video_predictor as official_build_video

    from apps.model_loading import load_predictor

    ours = load_predictor(
        checkpoint=checkpoint,
        config=config,
        device=args.device,
        image_size=args.image_size,
        apply_postprocessing=False,
        non_overlap_masks=True,
    )
    silence_official_progress_bars()
    official = official_build_video(
        resolve_config(config).official_config,
        str(checkpoint),
        device=args.device,
        hydra_overrides_extra=[f"++model.image_size={args.image_size}", "++model.non_overlap_masks=true"],
        apply_postprocessing=False,
    )
    return ours, official


def run_side(side: str, predictor, root: Path, video: str, out: Path, args: argparse.Namespace) -> float:
    """Seconds to segment one video end to end into ``out`` (a fresh folder)."""
    from apps.vos.runner import VOSOptions, run_video

    later = args.mode == "later"
    if args.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    if side == "ours":
        options = VOSOptions(track_later=later)
        run_video(
            predictor, frames_dir(root) / video, masks_dir(root) / video, out / video, options, args.precision
        )
    else:
        with precision_context(args.device, args.precision):
            semantics = dict(track_later=later, find_undecided=False)
            official_vos_video(predictor, frames_dir(root), masks_dir(root), out, video, **semantics)
    if args.device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def mean_iou(ours: Path, official: Path) -> float:
    """Mean over frames and object ids of the mask IoU between two palette-layout output folders."""
    from PIL import Image

    scores = []
    for path in sorted(ours.rglob("*.png")):
        a = np.array(Image.open(path))
        b = np.array(Image.open(official / path.relative_to(ours)))
        scores += [iou(a == i, b == i) for i in set(np.unique(a)) | set(np.unique(b)) if i]
    return float(np.mean(scores)) if scores else float("nan")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = f"sam2.1_hiera_{args.size}"
    width, height = args.frame_size
    print(
        f"vos_inference: {args.videos} clips x {args.frames} frames at {width}x{height}, {config} at "
        f"{args.image_size}, {args.device} {args.precision}, mode {args.mode}; load average {load_average()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="vos-bench-") as tmp:
        tmp = Path(tmp)
        checkpoint = write_checkpoint(config, tmp / f"{config}.pt", args.seed)
        root = tmp / "data"
        videos = [f"clip_{k}" for k in range(args.videos)]
        annotated = (0, 3) if args.mode == "later" else (0,)
        for k, video in enumerate(videos):
            write_palette_video(
                root,
                video,
                annotated,
                True,
                CUSTOM_PALETTE,
                seed=k,
                num_frames=args.frames,
                height=height,
                width=width,
            )
        ours, official = build_both(config, checkpoint, args)
        sides = {"ours": ours, "official": official}
        for name, predictor in sides.items():  # warm-up: first-call costs out of the measurements
            run_side(name, predictor, root, videos[0], tmp / "warmup" / name, args)
            release(args.device)
        per_frame: dict[str, list[float]] = {name: [] for name in sides}
        for rep in range(args.repeats):
            for video in videos:
                for name, predictor in sides.items():
                    seconds = run_side(name, predictor, root, video, tmp / f"run{rep}" / name, args)
                    per_frame[name].append(seconds / args.frames)
                    print(
                        f"  {name:8s} {video}: {seconds:7.2f} s, {seconds / args.frames:.3f} s/frame",
                        flush=True,
                    )
                    release(args.device)
        agreement = mean_iou(tmp / "run0" / "ours", tmp / "run0" / "official")
    ours_s, official_s = (statistics.median(per_frame[name]) for name in ("ours", "official"))
    print(f"median s/frame: ours {ours_s:.3f}, official {official_s:.3f}")
    print(f"speed-up (official / ours): {official_s / ours_s:.2f}x")
    print(f"mask IoU ours vs official (mean over frames and objects): {agreement:.4f}")
    threads = torch.get_num_threads()
    print(f"load average at the end: {load_average()} on {os.cpu_count()} CPUs, {threads} torch threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
