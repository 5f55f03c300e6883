"""CUDA check of the image side against the official implementation (run on a GPU machine, not in CI).

Both sides load the same random weights; runs under bf16 autocast as the official examples do, prints the
differences and the median set_image / predict time of each side (alternating, after warm-up).

    python -m benchmarks.cuda_image_check    # from the repository root
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator as OfficialAMG
from sam2.sam2_image_predictor import SAM2ImagePredictor as OfficialPredictor

from model import SAM2AutomaticMaskGenerator, SAM2ImagePredictor, build_sam2
from model.images.connected_components import connected_components
from tests.support.official_ref import build_official, save_official_checkpoint
from tests.support.synthetic import shapes_image


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def timed(fn, device: str) -> float:
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    device = "cuda"
    print(torch.__version__, torch.cuda.get_device_name())
    config = sys.argv[1] if len(sys.argv) > 1 else "sam2.1_hiera_tiny"
    official_model = build_official(config, seed=1, apply_postprocessing=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_official_checkpoint(official_model, Path(tmp) / f"{config}.pt")
        ours_model = build_sam2(config, ckpt, device=device)
    official_model = official_model.to(device)
    assert ours_model.device.type == "cuda"
    image = shapes_image(480, 640)
    ours, official = SAM2ImagePredictor(ours_model), OfficialPredictor(official_model)
    point = dict(point_coords=np.array([[190.0, 170.0]]), point_labels=np.array([1]))
    box = dict(box=np.array([320.0, 260.0, 580.0, 430.0]), multimask_output=False)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        ours.set_image(image)
        official.set_image(image)
        emb_diff = (ours.get_image_embedding().float() - official.get_image_embedding().float()).abs().max()
        print(
            f"bf16 embedding max abs diff {float(emb_diff):.3e} "
            f"(embedding max abs {float(official.get_image_embedding().abs().max()):.3e})"
        )
        for label, kwargs in (("point", point), ("box", box)):
            m, s, _ = ours.predict(**kwargs)
            rm, rs, _ = official.predict(**kwargs)
            ious = [iou(a, b) for a, b in zip(m, rm)]
            print(f"bf16 {label}: mask IoU min {min(ious):.4f}, score max diff {np.abs(s - rs).max():.3e}")

        times: dict[str, list[float]] = {"ours": [], "official": []}
        for rep in range(12):
            for name, predictor in (("ours", ours), ("official", official)):
                t = timed(lambda p=predictor: (p.set_image(image), p.predict(**point)), device)
                if rep >= 2:
                    times[name].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"set_image+predict median: ours {med['ours'] * 1e3:.1f} ms, "
            f"official {med['official'] * 1e3:.1f} ms, ratio {med['ours'] / med['official']:.3f}"
        )

        common = dict(points_per_side=8, pred_iou_thresh=0.3, stability_score_thresh=0.05)
        common["stability_score_offset"] = 0.02
        ours_records = SAM2AutomaticMaskGenerator(ours_model, **common).generate(image)
        ref_records = OfficialAMG(official_model, **common).generate(image)
        print(f"AMG on CUDA: ours {len(ours_records)} masks, official {len(ref_records)}")

    # Connected components on the GPU equal the CPU result.
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(4, 1, 256, 256, generator=gen) > 0.55
    cpu_labels, cpu_areas = connected_components(masks)
    gpu_labels, gpu_areas = connected_components(masks.to(device))
    print("connected components: areas equal on GPU and CPU:", torch.equal(cpu_areas, gpu_areas.cpu()))
    print("peak CUDA memory (MiB):", torch.cuda.max_memory_allocated() // 2**20)


if __name__ == "__main__":
    main()
