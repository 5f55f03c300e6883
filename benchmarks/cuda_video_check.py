"""CUDA check of the video predictor against the official one (run on a GPU machine, not in CI).

Same random weights on both sides, bf16 autocast as the official examples use, a synthetic JPEG clip:
one click
on frame 0, forward propagation. Prints the per-frame mask IoU and the median seconds per tracked frame.

    python -m benchmarks.cuda_video_check    # from the repository root [frames]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from model import build_sam2_video_predictor
from tests.support.official_ref import build_official, save_official_checkpoint
from tests.support.video_clips import make_clip, write_jpeg_folder


def track(predictor, folder: str, point: tuple[float, float]) -> tuple[list[torch.Tensor], list[float]]:
    masks, times = [], []
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        state = predictor.init_state(folder)
        predictor.add_new_points_or_box(state, 0, 1, points=[list(point)], labels=[1])
        torch.cuda.synchronize()
        last = time.perf_counter()
        for _, _, logits in predictor.propagate_in_video(state):
            masks.append((logits[0, 0] > 0).cpu())
            torch.cuda.synchronize()
            now = time.perf_counter()
            times.append(now - last)
            last = now
    return masks, times


def main() -> None:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    print(torch.__version__, torch.cuda.get_device_name())
    official = build_official("sam2.1_hiera_tiny", seed=2, video=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_official_checkpoint(official, Path(tmp) / "sam2.1_hiera_tiny.pt")
        ours = build_sam2_video_predictor(
            "sam2.1_hiera_tiny", ckpt, device="cuda", apply_postprocessing=False
        )
        clip = make_clip(num_frames=frames)
        folder = str(write_jpeg_folder(clip, Path(tmp) / "clip"))
        official = official.to("cuda")
        point = clip.centre("disc", 0)
        results = {}
        for _ in range(2):  # the first pass warms both up
            for name, predictor in (("ours", ours), ("official", official)):
                results[name] = track(predictor, folder, point)
        ious = []
        for a, b in zip(results["ours"][0], results["official"][0]):
            union = (a | b).sum().item()
            ious.append(1.0 if union == 0 else (a & b).sum().item() / union)
        fg = sum(m.float().mean().item() for m in results["official"][0]) / frames
        print(f"{frames} frames: min mask IoU ours vs official {min(ious):.4f}, mean foreground {fg:.3f}")
        for name in ("ours", "official"):
            print(f"{name}: median {statistics.median(results[name][1][1:]) * 1e3:.1f} ms per tracked frame")
        print("peak CUDA memory (MiB):", torch.cuda.max_memory_allocated() // 2**20)


if __name__ == "__main__":
    main()
