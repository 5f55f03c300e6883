"""Side-by-side speed of ours and the official ``sam2==1.1.0``: same random weights, same inputs.

The official model is built with seeded random weights and written as an official checkpoint (or
``--checkpoint`` names a real one); ours loads that file, the official side is built from it by the
official builders. Both run the same inputs,
alternating (ours, official, ours, ...) after one warm-up each; tracking steps the two predictors frame by
frame in turn. Prints a table of medians and ratios (official time / our time = our speed-up) with the
targets of issue 10, and writes it as JSON. Rows, per precision (fp32: no autocast; bf16: both sides
under ``torch.autocast(device, torch.bfloat16)``, as the official scripts run):

- image embedding (``set_image`` on a 1280x720 image) and click-to-mask on the embedded image;
- a correction click on a tracked frame (prompt frame 0, propagate, then click again and again on an
  already tracked frame with ``clear_old_points=False``): the first click, and the median of the others;
- steady seconds per tracked frame with a full memory bank (frames from ``--skip-frames`` on), 1 and 3
  objects; the masks of the 1-object pass give the IoU rows (ours against the official, bf16 against fp32);
- open-to-first-mask on a new JPEG-folder video of 60 and of 600 frames (``init_state`` plus a click on
  frame 0; the official reads every frame first, about 12 MiB each at 1024: skipped when RAM is short);
- peak RSS of tracking a short and a long clip, each side in a fresh process (CPU, fp32, at
  ``--rss-image-size``), and the long/short ratio of each side;
- on CUDA: both ``vos_optimized=True`` predictors (compiled; bf16 FPS) and the peak CUDA memory of tracking.

    python -m benchmarks.compare --quick                   # about 2 minutes on a 2-core CPU
    python -m benchmarks.compare                           # tiny at 1024, both precisions (10-20 minutes)
    python -m benchmarks.compare --device cuda --size large --precision bf16
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from benchmarks import compare_measure as measure
from benchmarks import compare_setup as setup
from benchmarks.compare_report import (
    BF16_VS_FP32,
    GROWTH,
    MEMORY,
    TIME,
    Row,
    Samples,
    agreement_row,
    format_table,
    fps_row,
    summary,
    target_for,
    timing_row,
    write_json,
)

ROOT = Path(__file__).resolve().parents[1]
SIZES = ("tiny", "small", "base_plus", "large")
RAM_MARGIN_BYTES = 3 * setup.GIB  # left free for the rest of the machine while the official preloads


def _pair(text: str) -> tuple[int, int]:
    first, second = (int(v) for v in text.replace("x", ",").split(","))
    return first, second


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    parser.add_argument("--size", choices=SIZES, default="tiny")
    parser.add_argument("--family", choices=("sam2.1", "sam2"), default="sam2.1", help="SAM 2.1 or SAM 2")
    parser.add_argument("--image-size", type=int, help="model input size (default 1024; quick 256)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "both"),
        default="both",
        help="both (default) also compares our bf16 with the official fp32",
    )
    parser.add_argument(
        "--repeats", type=int, help="measured runs per side of the image and open rows (3; quick 2)"
    )
    parser.add_argument(
        "--passes", type=int, default=1, help="tracking passes; each gives every steady frame"
    )
    parser.add_argument(
        "--json", type=Path, help="default benchmarks/results/compare-<device>-<size>-...json"
    )
    parser.add_argument(
        "--quick", action="store_true", help="image size 256, few and small frames, repeats 2"
    )
    parser.add_argument("--frame-size", type=_pair, help="video frames WxH (default 1280x720; quick 480x270)")
    parser.add_argument("--track-frames", type=int, help="frames of the tracking clip (default 12; quick 10)")
    parser.add_argument("--skip-frames", type=int, help="frames before the memory bank is full (8; quick 7)")
    parser.add_argument(
        "--clicks", type=int, help="correction clicks on the tracked frame (default 5; quick 4)"
    )
    parser.add_argument("--click-frame", type=int, default=6, help="the tracked frame that is corrected")
    parser.add_argument("--open-frames", type=_pair, default=(60, 600), help="short,long clip to open")
    parser.add_argument("--rss-frames", type=_pair, help="short,long clip for peak RSS (24,240; quick 6,24)")
    parser.add_argument(
        "--rss-image-size", type=int, help="model input size of the RSS runs (256; quick 128)"
    )
    parser.add_argument("--skip-rss", action="store_true", help="leave out the peak RSS rows")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument(
        "--checkpoint", type=Path, help="an official .pt of the chosen size to use instead of random weights"
    )
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = dict(
        device="cuda" if torch.cuda.is_available() else "cpu",
        image_size=256 if quick else 1024,
        repeats=2 if quick else 3,
        frame_size=(480, 270) if quick else (1280, 720),
        track_frames=10 if quick else 12,
        skip_frames=7 if quick else 8,
        clicks=4 if quick else 5,
        rss_frames=(6, 24) if quick else (24, 240),
        rss_image_size=128 if quick else 256,
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here; run with --device cpu")
    if not 0 < args.click_frame < args.track_frames or args.skip_frames >= args.track_frames:
        parser.error(
            f"--click-frame ({args.click_frame}) and --skip-frames ({args.skip_frames}) must be below "
            f"--track-frames ({args.track_frames}), and the click frame above 0"
        )
    if min(args.repeats, args.passes, args.clicks) < 1 or args.clicks < 2:
        parser.error(
            "--repeats and --passes must be at least 1, --clicks at least 2 (a first and a next click)"
        )
    if args.open_frames[0] >= args.open_frames[1] or args.rss_frames[0] >= args.rss_frames[1]:
        parser.error("--open-frames and --rss-frames take a short and a longer clip: SHORT,LONG")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file (give an official sam2.1_hiera_*.pt)")
    if args.json is None:
        name = f"compare-{args.device}-{args.size}-{args.image_size}-{args.precision}.json"
        args.json = ROOT / "benchmarks" / "results" / name
    return args


STARTED = time.perf_counter()


def log(text: str) -> None:
    """A progress line, stamped with the seconds since the module was loaded."""
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {text}", flush=True)


def machine_description(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    model_name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model_name = next(
                line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return f"{model_name}, {torch.get_num_threads()} torch threads"


def open_clips_that_fit(clips: dict, image_size: int) -> tuple[dict, dict[int, str]]:
    """The open clips the official can preload without starving the machine, and why others are left out."""
    available = setup.available_ram_bytes()
    fit, skipped = {}, {}
    for frames, clip in clips.items():
        need = setup.official_preload_bytes(frames, image_size)
        if available is not None and need * 1.25 + RAM_MARGIN_BYTES > available:
            skipped[frames] = (
                f"not measured: the official would preload {need / setup.GIB:.1f} GiB of frames and "
                f"{available / setup.GIB:.1f} GiB are free; use fewer --open-frames or a smaller --image-size"
            )
        else:
            fit[frames] = clip
    return fit, skipped


def precision_rows(key_results: dict, precision: str, args: argparse.Namespace, labels: dict) -> list[Row]:
    """Timing rows of one precision, in table order."""
    return [
        timing_row(key, labels[key], precision, key_results[key], args.device)
        for key in labels
        if key in key_results
    ]


@dataclass
class Measured:
    """Everything one run measured, before it becomes rows."""

    results: dict[str, dict[str, Samples]] = field(default_factory=dict)  # precision -> row key -> samples
    masks: dict[str, dict] = field(default_factory=dict)  # precision -> side -> frame -> N, H, W bool
    skipped: dict[str, dict[int, str]] = field(default_factory=dict)  # precision -> open frames -> why
    rss: dict | None = None  # side -> frames -> video_memory.Result
    cuda: dict | None = None  # "memory": side -> MiB; "compiled": seconds per frame


def row_labels(args: argparse.Namespace) -> dict[str, str]:
    """Row key -> what the table calls it (also the order of the timing rows)."""
    corrected = f"tracked frame {args.click_frame}"
    short, long = args.open_frames
    return {
        "embedding": "image embedding: set_image 1280x720",
        "click": "click-to-mask on the embedded image",
        "correction_first": f"correction click on {corrected}: first",
        "correction_next": f"correction click on {corrected}: next {args.clicks - 1}, median",
        "track_1": "tracked frame, full memory bank, 1 object",
        "track_3": "tracked frame, full memory bank, 3 objects",
        f"open_{short}": f"open-to-first-mask, {short}-frame video",
        f"open_{long}": f"open-to-first-mask, {long}-frame video",
    }


def measure_all(args: argparse.Namespace, config: str, precisions: list[str], work: Path) -> Measured:
    """Write the weights and clips into ``work``, build both sides and run every measurement."""
    width, height = args.frame_size
    log("writing the clips" + ("" if args.checkpoint else " and the random-weight official checkpoint"))
    checkpoint = args.checkpoint or setup.write_official_checkpoint(config, work / f"{config}.pt", args.seed)
    image, image_point = setup.sample_image()
    clip = setup.write_track_clip(
        work / "track", args.track_frames, width, height, args.click_frame, args.clicks
    )
    open_clips = {n: setup.write_open_clip(work / f"open_{n}", n, width, height) for n in args.open_frames}
    sides = setup.build_sides(config, checkpoint, args.image_size, args.device)
    measured = Measured()
    for precision in precisions:
        log(f"[{precision}] image embedding and click ...")
        found = measure.measure_image(sides, image, image_point, args.device, precision, args.repeats)
        log(f"[{precision}] tracking {args.track_frames} frames, 1 and 3 objects, {args.clicks} clicks ...")
        tracked, measured.masks[precision] = measure.measure_video(
            sides, clip, args.device, precision, args.skip_frames, args.passes
        )
        found.update(tracked)
        fit, measured.skipped[precision] = open_clips_that_fit(open_clips, args.image_size)
        log(f"[{precision}] open-to-first-mask on {sorted(fit)} frames ...")
        found.update(measure.measure_open(sides, fit, args.device, precision, args.repeats))
        measured.results[precision] = found
    if args.device == "cuda":
        log("[cuda] peak CUDA memory of tracking; the vos_optimized=True predictors (compiling) ...")
        measured.cuda = {"memory": measure.measure_cuda_memory(sides, clip, args.device, args.skip_frames)}
        del sides
        setup.release(args.device)
        compiled = setup.build_sides(config, checkpoint, args.image_size, args.device, vos_optimized=True)
        measured.cuda["compiled"] = measure.measure_compiled(compiled, clip, args.device, args.skip_frames)
    if not args.skip_rss:
        log(f"peak RSS of tracking {args.rss_frames} frames, each side in a fresh process ...")
        rss_clips = {n: setup.write_open_clip(work / f"rss_{n}", n, width, height) for n in args.rss_frames}
        measured.rss = measure.measure_rss(config, checkpoint, rss_clips, args.rss_image_size)
    return measured


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    config = setup.config_name(args.size, args.family)
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    load_at_start = setup.load_average()
    log(
        f"benchmarks.compare: {config} at image size {args.image_size} on {args.device} "
        f"({machine_description(args.device)}), precision {args.precision}; "
        f"load average at start: {load_at_start}"
    )
    with tempfile.TemporaryDirectory(prefix="compare_") as tmp:
        measured = measure_all(args, config, precisions, Path(tmp))
    rows = build_rows(args, precisions, measured)
    print()
    print(format_table(rows))
    print(summary(rows))
    if args.checkpoint is None:
        print(
            "Random weights: their mask logits sit near 0, so bf16 rounding flips many more pixels than with "
            "trained weights; judge the bf16 IoU rows with --checkpoint (an official .pt)."
        )
    meta = {
        "command": "python -m benchmarks.compare " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": config,
        "weights": str(args.checkpoint) if args.checkpoint else f"random, seed {args.seed}",
        "device": args.device,
        "machine": machine_description(args.device),
        "image_size": args.image_size,
        "precisions": precisions,
        "frame_size": list(args.frame_size),
        "repeats": args.repeats,
        "passes": args.passes,
        "track_frames": args.track_frames,
        "skip_frames": args.skip_frames,
        "rss_image_size": args.rss_image_size,
        "torch": torch.__version__,
        "official": f"sam2 {metadata.version('sam2')}",
        "load_average_start": load_at_start,
        "load_average_end": setup.load_average(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = write_json(args.json, rows, meta)
    log(f"load average at end: {meta['load_average_end']}; {meta['seconds']:.0f} s; JSON: {path}")
    return 1 if args.check and any(row.met is False for row in rows) else 0


def build_rows(args: argparse.Namespace, precisions: list[str], measured: Measured) -> list[Row]:
    """Every row of the table, in order: per precision, then bf16 against fp32, memory, CUDA extras."""
    labels = row_labels(args)
    results, masks, skipped = measured.results, measured.masks, measured.skipped
    rss, cuda_extra = measured.rss, measured.cuda
    rows: list[Row] = []
    for precision in precisions:
        rows += precision_rows(results[precision], precision, args, labels)
        for frames, reason in skipped[precision].items():
            key = f"open_{frames}"
            rows.append(Row(key, labels[key], precision, TIME, None, None, note=reason))
        rows.append(
            agreement_row(
                "iou_official",
                "mask IoU, ours vs official (tracked frames)",
                precision,
                masks[precision]["ours"],
                masks[precision]["official"],
                args.device,
            )
        )
    if len(precisions) == 2:
        ours_bf16, fp32 = results["bf16"], results["fp32"]
        for key in ("embedding", "track_1", "track_3"):
            samples = {"ours": ours_bf16[key]["ours"], "official": fp32[key]["official"]}
            rows.append(timing_row(key, labels[key], BF16_VS_FP32, samples, args.device))
        # How far bf16 moves each implementation's own masks: the official column is the official bf16
        # against the official fp32 (random weights leave logits near 0, where bf16 flips many pixels).
        own = (masks["bf16"]["official"], masks["fp32"]["official"])
        label = "mask IoU, bf16 vs fp32 of the same implementation"
        rows.append(
            agreement_row(
                "iou_ours_fp32", label, "bf16", masks["bf16"]["ours"], masks["fp32"]["ours"], args.device, own
            )
        )
        label = "mask IoU, ours bf16 vs official fp32"
        reference = masks["fp32"]["official"]
        rows.append(
            agreement_row(
                "iou_official_fp32", label, BF16_VS_FP32, masks["bf16"]["ours"], reference, args.device
            )
        )
    if rss is not None:
        short, long = args.rss_frames
        where = f"CPU fp32 @{args.rss_image_size}"
        for frames in (short, long):
            ours, official = rss["ours"][frames], rss["official"][frames]
            note = (
                f"RSS after building the predictor: ours {ours.baseline_mib:.0f} MiB, "
                f"official {official.baseline_mib:.0f} MiB"
            )
            if not (ours.hwm_reset and official.hwm_reset):
                note += "; the high water mark could not be reset: peaks include model loading"
            label = f"peak RSS tracking {frames} frames ({where})"
            rows.append(
                Row(f"rss_{frames}", label, "fp32", MEMORY, ours.peak_mib, official.peak_mib, note=note)
            )
        growth = {name: rss[name][long].peak_mib / rss[name][short].peak_mib for name in rss}
        label = f"peak RSS {long} / {short} frames"
        target = target_for("rss_growth", "fp32", args.device)
        rows.append(Row("rss_growth", label, "fp32", GROWTH, growth["ours"], growth["official"], target))
    if cuda_extra is not None:
        memory = cuda_extra["memory"]
        label = "CUDA peak memory, tracking 1 object"
        rows.append(Row("cuda_memory", label, "bf16", MEMORY, memory["ours"], memory["official"]))
        label = "vos_optimized=True (compiled), 1 object"
        rows.append(fps_row("compiled", label, cuda_extra["compiled"], args.device))
    return rows


if __name__ == "__main__":
    sys.exit(main())
