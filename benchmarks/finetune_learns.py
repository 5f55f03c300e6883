"""Proof that fine-tuning learns: ``python -m apps.finetune`` trains a random-weight SAM 2.1 tiny on generated
clips of textured moving shapes, and J&F on held-out clips is measured before and after.

    python -m benchmarks.finetune_learns                  # 30 minutes of training on the CPU (the default)
    python -m benchmarks.finetune_learns --minutes 5      # a shorter budget
    python -m benchmarks.finetune_learns --steps 40       # a fixed number of steps, no budget
    python -m benchmarks.finetune_learns --gpu-matrix     # CUDA: seconds per step and peak memory at 1024

What runs, in order (everything in ``--work``, default ``benchmarks/results/finetune_learns``):

1. ``--train-clips`` training clips and ``--heldout-clips`` held-out clips (`benchmarks.finetune_clips`, two
   seeds: no clip in both), written as DAVIS folders: JPEG frames and palette PNG annotations;
2. SAM 2.1 tiny with random weights (``torch.manual_seed(--seed)``), saved as an official checkpoint;
3. without ``--steps``: a few calibration steps of ``apps.finetune`` to measure seconds per step, and the
   number of steps that fills ``--minutes`` of training;
4. the run: ``apps.finetune.main([...])`` from that checkpoint, with ``--val`` on the held-out clips, so J&F
   is computed before the first step and after the last by the shipped code (each held-out clip tracked from
   its first frame's ground-truth masks by our video predictor, scored by ``apps.vos.eval``);
5. the saved ``last.pt`` scored again through ``python -m apps.vos.inference --checkpoint`` and
   ``apps.vos.eval``, as a user would, which must agree with the run's last validation.

The report: the loss averaged over each tenth of the run (the loss of one step depends on its prompts: a
clip prompted by clicks sums the losses of up to 8 correction rounds, one prompted by a mask a single
round), the loss curve (``run/losses.csv``, ``run/curves.png``), J&F before and after, seconds per step.
Targets: the loss of the last tenth at most half that of the first tenth, J&F up by at least 20 points;
the exit status is 1 when one is missed.

Random weights start near chance, so the learning rate is a from-scratch one (1e-4, against 5e-6 for
fine-tuning the released weights), the images small (128 pixels) and the clips short (3 frames) so that a
2-core CPU makes a few hundred steps in 30 minutes.
"""

from __future__ import annotations

import argparse
import csv
import gc
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.finetune_clips import make_clip, write_clips
from model.training.losses import LOSS_PARTS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "sam2.1_hiera_tiny"
MARKER = ".finetune_learns"  # a work folder holding this file is ours to empty
CALIBRATION_STEPS = 6
BUDGET_SHARE = 0.9  # steps are planned for 90 % of the budget: steps vary in length with their prompts
LOSS_TARGET, JF_TARGET = 0.5, 20.0
MATRIX_SIZES = ("sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large")
MATRIX_MODES = (
    ("full", "none", False),
    ("full + act. ckpt", "none", True),
    ("frozen encoder", "image-encoder", False),
)
GIB = 2**30


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.finetune_learns",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget (default 30)")
    parser.add_argument("--steps", type=int, help="train this many steps instead of filling --minutes")
    parser.add_argument("--image-size", type=int, default=128, help="network input size (default 128)")
    parser.add_argument("--frames", type=int, default=3, help="frames per training clip (default 3)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--vision-lr", type=float, default=1e-3, help="of the image encoder (default 1e-3)")
    parser.add_argument("--warmup", type=int, default=20, help="steps of linear warm-up (default 20)")
    parser.add_argument("--train-clips", type=int, default=400, help="generated training clips (400)")
    parser.add_argument("--heldout-clips", type=int, default=10, help="generated held-out clips (10)")
    parser.add_argument("--clip-frames", type=int, default=8, help="frames of a generated clip (8)")
    parser.add_argument("--workers", type=int, default=1, help="apps.finetune --workers (default 1)")
    parser.add_argument("--device", default="cpu", help="device of the run (default cpu)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine, two threads waiting on each other are "
        "several times slower than one; the clip-making worker has the other core)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, weights and run (default 0)")
    parser.add_argument(
        "--work", type=Path, help="working folder (default benchmarks/results/finetune_learns)"
    )
    parser.add_argument(
        "--gpu-matrix",
        action="store_true",
        help="instead: seconds per step and peak memory of tiny, small, base+ and large at 1024 on CUDA",
    )
    parser.add_argument("--matrix-steps", type=int, default=3, help="timed steps per --gpu-matrix cell (3)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------- set-up


def fresh_work_folder(work: Path) -> Path:
    """``work``, emptied if an earlier run of this benchmark made it; refuses a foreign non-empty folder."""
    if work.exists() and any(work.iterdir()):
        if not (work / MARKER).exists():
            sys.exit(f"error: {work} is not empty and was not made by this benchmark: pass another --work")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()
    return work


def random_checkpoint(path: Path, seed: int) -> Path:
    """SAM 2.1 tiny with freshly initialised weights, written as an official ``{"model": ...}`` file."""
    from model import build_sam2

    torch.manual_seed(seed)
    network = build_sam2(CONFIG, None, device="cpu", apply_postprocessing=False, mode="train")
    torch.save({"model": network.state_dict()}, path)
    return path


def finetune_argv(args: argparse.Namespace, work: Path, out: Path, steps: int, validate: bool) -> list[str]:
    """The ``python -m apps.finetune`` command line of a run into ``out``."""
    argv = ["--data", str(work / "train"), "--checkpoint", str(work / "initial.pt"), "--config", CONFIG]
    argv += ["--out", str(out), "--steps", str(steps), "--image-size", str(args.image_size)]
    argv += ["--frames", str(args.frames), "--lr", str(args.lr), "--vision-lr", str(args.vision_lr)]
    argv += ["--warmup", str(min(args.warmup, steps)), "--seed", str(args.seed)]
    argv += ["--workers", str(args.workers), "--device", args.device]
    if validate:
        argv += ["--val", str(work / "heldout")]
    return argv


def finetune(argv: list[str]) -> None:
    from apps.finetune import main

    print("python -m apps.finetune " + " ".join(argv), flush=True)
    status = main(argv)
    if status != 0:
        sys.exit(f"error: apps.finetune ended with status {status}")


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class RunRecord:
    """What a run wrote: per-step losses (name -> values, step order) and seconds, and its validations."""

    losses: dict[str, list[float]]
    seconds: list[float]
    jf: dict[int, float]  # step -> J&F (percent)


def read_run(out: Path) -> RunRecord:
    with (out / "losses.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    losses = {name: [float(row[name]) for row in rows] for name in ("total", *LOSS_PARTS)}
    seconds = [float(row["seconds"]) for row in rows]
    jf = {}
    if (out / "validation.csv").is_file():
        with (out / "validation.csv").open(newline="") as handle:
            jf = {int(row["step"]): float(row["J&F"]) for row in csv.DictReader(handle)}
    return RunRecord(losses, seconds, jf)


def plan_steps(args: argparse.Namespace, work: Path) -> tuple[int, float]:
    """Steps that fill the budget, from the mean length of a few calibration steps (the first, which
    also warms up, left out); returns (steps, seconds per calibration step)."""
    finetune(finetune_argv(args, work, work / "calibration", CALIBRATION_STEPS, validate=False))
    seconds = read_run(work / "calibration").seconds[1:]
    per_step = statistics.mean(seconds)
    steps = max(1, int(args.minutes * 60 * BUDGET_SHARE / per_step))
    print(f"calibration: {per_step:.2f} s a step -> {steps} steps for {args.minutes:g} minutes", flush=True)
    return steps, per_step


def checkpoint_jf(args: argparse.Namespace, work: Path, checkpoint: Path) -> float | None:
    """J&F of a checkpoint file on the held-out clips, through ``apps.vos.inference`` and its eval."""
    from apps.vos import inference
    from apps.vos.eval import evaluate

    held, predictions = work / "heldout", work / "predictions"
    argv = ["--base_video_dir", str(held / "JPEGImages"), "--input_mask_dir", str(held / "Annotations")]
    argv += ["--output_mask_dir", str(predictions), "--checkpoint", str(checkpoint), "--config", CONFIG]
    argv += ["--image_size", str(args.image_size), "--device", args.device]
    if inference.main(argv) != 0:
        return None
    mean = evaluate(held / "Annotations", predictions, progress=False).mean()
    return None if mean is None else mean[2]


# ---------------------------------------------------------------------------------------------- report


def tenths(values: list[float]) -> list[tuple[int, int, float]]:
    """(first step, last step, mean) of each tenth of a run (1-based steps; fewer parts for short runs)."""
    parts = np.array_split(np.arange(len(values)), min(10, len(values)))
    return [(int(p[0]) + 1, int(p[-1]) + 1, float(np.mean([values[i] for i in p]))) for p in parts]


def loss_table(record: RunRecord) -> str:
    names = list(record.losses)
    columns = {name: tenths(record.losses[name]) for name in names}
    lines = [f"{'steps':>11}" + "".join(f"{name:>14}" for name in names)]
    for i, (first, last, _) in enumerate(columns["total"]):
        lines.append(f"{first:>5}-{last:<5}" + "".join(f"{columns[name][i][2]:>14.4f}" for name in names))
    return "\n".join(lines)


def report(args, record: RunRecord, steps: int, saved_jf: float | None, out: Path, wall_s: float) -> bool:
    """Print the results; True when both targets are met."""
    parts = tenths(record.losses["total"])
    start, end = parts[0][2], parts[-1][2]
    drop = 1.0 - end / start
    before, after = record.jf.get(0), record.jf.get(steps)
    gain = None if before is None or after is None else after - before
    train_s = sum(record.seconds)
    print("\n" + "=" * 100)
    print(
        f"SAM 2.1 tiny from random weights, {args.image_size} px, {args.frames} frames, batch 1, lr "
        f"{args.lr:g} (vision {args.vision_lr:g}, warm-up {args.warmup} steps), on {args.device}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    print(f"data: {args.train_clips} training clips, {args.heldout_clips} held-out clips")
    print(f"\nloss, averaged over each tenth of the {steps} steps:\n{loss_table(record)}")
    print(f"\nloss: {start:.3f} (first tenth) -> {end:.3f} (last tenth): down {100 * drop:.1f} %", end="")
    print(f"  [target >= {100 * LOSS_TARGET:.0f} %: {'met' if drop >= LOSS_TARGET else 'MISSED'}]")
    if gain is None:
        print("J&F on the held-out clips: not measured (no validation rows)")
    else:
        met = "met" if gain >= JF_TARGET else "MISSED"
        print(
            f"J&F on the held-out clips: {before:.1f} before -> {after:.1f} after: {gain:+.1f} points", end=""
        )
        print(f"  [target >= +{JF_TARGET:.0f}: {met}]")
    if saved_jf is not None:
        print(f"J&F of {out / 'last.pt'} through apps.vos.inference + apps.vos.eval: {saved_jf:.1f}")
    print(
        f"seconds per step: {statistics.mean(record.seconds):.2f} mean, "
        f"{statistics.median(record.seconds):.2f} median; training {train_s / 60:.1f} min "
        f"(budget {'none: --steps' if args.steps else f'{args.minutes:g} min'}), whole benchmark "
        f"{wall_s / 60:.1f} min"
    )
    print(f"loss curve: {out / 'losses.csv'}, {out / 'curves.png'}")
    return drop >= LOSS_TARGET and gain is not None and gain >= JF_TARGET


def learns(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    work = fresh_work_folder(args.work or ROOT / "benchmarks" / "results" / "finetune_learns")
    size = (args.image_size, args.image_size)
    write_clips(work / "train", args.train_clips, args.seed, args.clip_frames, size)
    write_clips(work / "heldout", args.heldout_clips, 10_000 + args.seed, args.clip_frames, size)
    random_checkpoint(work / "initial.pt", args.seed)
    print(f"data and random weights in {work}", flush=True)
    steps = args.steps or plan_steps(args, work)[0]
    out = work / "run"
    finetune(finetune_argv(args, work, out, steps, validate=True))
    saved_jf = checkpoint_jf(args, work, out / "last.pt")
    record = read_run(out)
    met = report(args, record, steps, saved_jf, out, time.perf_counter() - started)
    return 0 if met else 1


# ---------------------------------------------------------------------------------------------- GPU matrix


def matrix_batches(frames: int, count: int, seed: int, size: int = 1024) -> list:
    """``count`` batches of one generated clip of ``frames`` frames, ``size`` pixels square, 3 objects."""
    from model.training.batch import Clip, collate

    batches = []
    for index in range(count):
        rng = np.random.default_rng((seed, index))
        images, labels = make_clip(rng, frames, (size, size), max_shapes=3, min_shapes=3)
        masks = np.stack([labels == obj for obj in (1, 2, 3)], axis=1)
        batches.append(collate([Clip(images, masks, (1, 2, 3))]))
    return batches


def matrix_cell(
    config: str, freeze_mode: str, checkpointing: bool, batches: list, device: str = "cuda"
) -> tuple[float, float]:
    """(seconds per step after the first, peak GiB allocated; NaN off CUDA) of training ``config`` on
    ``batches`` (their image size), in bf16 on CUDA, fp32 elsewhere."""
    from model import build_sam2
    from model.training.clip_training import ClipTraining
    from model.training.freeze import enable_activation_checkpointing, encoder_needs_grad, freeze
    from model.training.optimizer import build_optimizer
    from model.training.schedule import CosineSchedule
    from model.training.train_step import TrainStep

    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    size = batches[0].images.shape[-1]
    network = build_sam2(
        config, None, device=device, image_size=size, apply_postprocessing=False, mode="train"
    )
    freeze(network, freeze_mode)
    enable_activation_checkpointing(network, checkpointing)
    training = ClipTraining(network, encoder_grad=encoder_needs_grad(network))
    optimizer = build_optimizer(network)
    schedule = CosineSchedule(optimizer, len(batches))
    step = TrainStep(training, optimizer, schedule, precision="bf16" if cuda else "fp32")
    seconds = []
    for index, batch in enumerate(batches):
        if cuda:
            torch.cuda.synchronize()
        begun = time.perf_counter()
        step.run(index, [batch])
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - begun)
    peak = torch.cuda.max_memory_allocated() / GIB if cuda else float("nan")
    return statistics.mean(seconds[1:] or seconds), peak


def gpu_matrix(args: argparse.Namespace) -> int:
    if not torch.cuda.is_available():
        print("--gpu-matrix needs a CUDA GPU, and none is available here: run it on a machine with one.")
        return 2
    batches = matrix_batches(8, args.matrix_steps + 1, args.seed)
    print(f"{torch.cuda.get_device_name()}: 1024 px, batch 1, 8 frames, 3 objects, bf16, random weights")
    print(f"{'model':<24}{'mode':<20}{'s/step':>10}{'peak GiB':>10}  within 24 GB")
    fits: dict[str, bool] = {}
    for config in MATRIX_SIZES:
        for label, freeze_mode, checkpointing in MATRIX_MODES:
            try:
                per_step, peak = matrix_cell(config, freeze_mode, checkpointing, batches)
                cell = f"{per_step:>10.2f}{peak:>10.1f}  {'yes' if peak <= 24 else 'no'}"
                fits[config] = fits.get(config, False) or peak <= 24
            except torch.cuda.OutOfMemoryError:
                cell = f"{'out of memory':>20}"
            print(f"{config:<24}{label:<20}{cell}", flush=True)
            gc.collect()
            torch.cuda.empty_cache()
    small_ones = MATRIX_SIZES[:2]
    met = all(fits.get(config, False) for config in small_ones)
    print(f"target: tiny and small fine-tune at 1024 within 24 GB: {'met' if met else 'MISSED'}")
    return 0 if met else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return gpu_matrix(args) if args.gpu_matrix else learns(args)


if __name__ == "__main__":
    sys.exit(main())
