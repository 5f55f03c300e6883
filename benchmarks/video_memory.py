"""Peak memory and speed of video tracking, ours against the official ``sam2==1.1.0`` video predictor.

Every figure comes from a fresh Python process that builds one predictor, then resets the kernel's RSS high
water mark (``/proc/self/clear_refs``), runs the measured phase and reads the peak back (``VmHWM``), so the
peak is that of the phase and not of model loading. Two parts:

- **track**: ``init_state`` plus one full forward propagation of one object clicked on frame 0, over a
  short and a long synthetic clip of the same frame size (default 24 vs 240 frames of 256x256, model at
  ``image_size`` 256 with random weights; both implementations load the same official-format checkpoint,
  postprocessing off). Reports the peak RSS of each, its growth from the short to the long clip, and the
  seconds per tracked frame.
- **init**: ``init_state`` alone at the real 1024 configuration on a short and a long clip (default 10 vs
  110 small frames; both implementations resize them to 1024). The official predictor preloads every frame
  at 1024 (about 12 MiB each); ours decodes lazily. Reports the growth in MiB per extra frame.

Exits with status 1 when our figures break the limits (track growth >= 25 %, init growth >= 1 MiB/frame),
unless ``--no-check``.

    python -m benchmarks.video_memory                 # the full comparison (minutes; the official is slow)
    python -m benchmarks.video_memory --quick         # CI smoke run: tiny clips, ours only, no 1024 part
    python -m benchmarks.video_memory --quick --init-frames-short 2 --init-frames-long 100  # with it
    python -m benchmarks.video_memory --skip-official --frames-short 24 --frames-long 240
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TRACK_GROWTH_LIMIT_PCT = 25.0
"""Our peak RSS over the long clip may exceed that over the short clip by less than this (track part)."""
INIT_MIB_PER_FRAME_LIMIT = 1.0
"""Our ``init_state`` peak RSS at 1024 may grow by less than this per extra frame (init part)."""

RESULT_TAG = "VIDEO_MEMORY_RESULT "
MIB = 2**20


# ---------------------------------------------------------------------------------------------- clips


def write_clip(folder: str | os.PathLike, num_frames: int, height: int, width: int, quality: int = 90):
    """Write a synthetic clip as ``00000.jpg``, ``00001.jpg``, ... (one frame at a time, little memory).

    A red disc moves right and a green block moves left over a textured gradient. Returns the folder and the
    click ``(x, y)`` on the disc in frame 0.
    """
    import numpy as np
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack(
        [40 + 60 * xx / width, 60 + 50 * yy / height, 90 + 20 * np.sin(xx / 5.0) * np.cos(yy / 7.0)], -1
    )
    radius = 0.15 * min(height, width)
    for t in range(num_frames):
        s = t / max(1, num_frames - 1)
        image = background.copy()
        cx, cy = (0.25 + 0.3 * s) * width, (0.35 + 0.05 * np.sin(6 * s)) * height
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < radius**2] = (220, 40, 40)
        bx = (0.8 - 0.4 * s) * width
        image[(np.abs(xx - bx) < 0.08 * width) & (np.abs(yy - 0.72 * height) < 0.1 * height)] = (30, 200, 60)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            folder / f"{t:05d}.jpg", quality=quality
        )
    return folder, (0.25 * width, 0.35 * height)


# ---------------------------------------------------------------------------------------------- children


@dataclass
class Spec:
    """One measurement, run in a fresh process."""

    impl: str  # "ours" | "official"
    part: str  # "track" | "init"
    clip: str
    frames: int
    config: str = "sam2.1_hiera_tiny"
    image_size: int | None = None  # None: the configuration's own (1024)
    checkpoint: str | None = None  # None: seeded random weights
    click: tuple[float, float] = (0.0, 0.0)
    state_ram_budget_mb: float | None = -1.0  # -1: the predictor's default


@dataclass
class Result:
    spec: Spec
    baseline_mib: float  # RSS after building the predictor, before the phase
    peak_mib: float  # peak RSS during the phase (the whole process if the high water mark could not be reset)
    hwm_reset: bool
    init_s: float
    track_s: float
    tracked_frames: int
    foreground_frames: int
    extra: dict = field(default_factory=dict)

    @property
    def s_per_frame(self) -> float:
        return self.track_s / self.tracked_frames if self.tracked_frames else float("nan")


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's RSS high water mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _peak_rss_mib() -> float:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib() -> float:
    rss = _status_kib("VmRSS")
    return rss / 1024 if rss is not None else _peak_rss_mib()


def _build(spec: Spec):
    import torch

    torch.manual_seed(0)
    if spec.impl == "official":
        from sam2.build_sam import build_sam2_video_predictor as official_build

        from model.loading.configs import resolve_config

        extra = [] if spec.image_size is None else [f"++model.image_size={spec.image_size}"]
        return official_build(
            resolve_config(spec.config).official_config,
            spec.checkpoint,
            device="cpu",
            hydra_overrides_extra=extra,
            apply_postprocessing=False,
        )
    from model import build_sam2_video_predictor

    options = {}
    if spec.state_ram_budget_mb is None or spec.state_ram_budget_mb >= 0:
        options["state_ram_budget_mb"] = spec.state_ram_budget_mb
    return build_sam2_video_predictor(
        spec.config,
        spec.checkpoint,
        device="cpu",
        image_size=spec.image_size,
        apply_postprocessing=False,
        **options,
    )


def child_main(spec: Spec) -> Result:
    """Build the predictor, then measure the phase. Runs in the child process."""
    import torch

    predictor = _build(spec)
    gc.collect()
    baseline = _rss_mib()
    hwm_reset = _reset_peak()
    tracked = foreground = 0
    init_s = track_s = 0.0
    with torch.inference_mode():
        start = time.perf_counter()
        state = predictor.init_state(spec.clip)
        init_s = time.perf_counter() - start
        if state["num_frames"] != spec.frames:
            raise RuntimeError(f"{spec.impl} read {state['num_frames']} frames, expected {spec.frames}")
        if spec.part == "track":
            predictor.add_new_points_or_box(state, 0, 1, points=[list(spec.click)], labels=[1])
            start = time.perf_counter()
            for _, _, masks in predictor.propagate_in_video(state):
                tracked += 1
                foreground += int(bool((masks > 0).any()))
            track_s = time.perf_counter() - start
        peak = _peak_rss_mib()
    return Result(spec, baseline, peak, hwm_reset, init_s, track_s, tracked, foreground)


def run_child(spec: Spec, timeout: float = 3600.0) -> Result:
    """Measure ``spec`` in a fresh Python process."""
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.video_memory", "--child", json.dumps(asdict(spec))],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"measurement {spec.impl}/{spec.part}/{spec.frames} frames failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    data = json.loads(lines[-1][len(RESULT_TAG) :])
    data["spec"] = Spec(**{**data["spec"], "click": tuple(data["spec"]["click"])})
    return Result(**data)


def measure(spec: Spec, repeat: int = 1, timeout: float = 3600.0) -> Result:
    """Median over ``repeat`` fresh processes (peak RSS, baseline and times each take their own median)."""
    runs = [run_child(spec, timeout) for _ in range(repeat)]
    if len(runs) == 1:
        return runs[0]
    med = statistics.median
    first = runs[0]
    return Result(
        spec,
        med(r.baseline_mib for r in runs),
        med(r.peak_mib for r in runs),
        all(r.hwm_reset for r in runs),
        med(r.init_s for r in runs),
        med(r.track_s for r in runs),
        first.tracked_frames,
        min(r.foreground_frames for r in runs),
        {"peaks_mib": [r.peak_mib for r in runs], "s_per_frame": [r.s_per_frame for r in runs]},
    )


def make_checkpoint(path: Path, config: str, image_size: int, timeout: float = 600.0) -> Path:
    """Seeded random official weights saved as an official checkpoint (built in a throwaway process)."""
    code = (
        "from tests.support.official_ref import build_official, save_official_checkpoint\n"
        f"model = build_official({config!r}, image_size={image_size}, video=True)\n"
        f"save_official_checkpoint(model, {str(path)!r})\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=str(ROOT)
    )
    if proc.returncode != 0:
        raise RuntimeError(f"could not write the official checkpoint:\n{proc.stderr[-4000:]}")
    return path


# ---------------------------------------------------------------------------------------------- report


def growth_pct(short: Result, long: Result) -> float:
    return 100.0 * (long.peak_mib / short.peak_mib - 1.0)


def mib_per_frame(short: Result, long: Result) -> float:
    return (long.peak_mib - short.peak_mib) / (long.spec.frames - short.spec.frames)


def format_table(pairs: dict[tuple[str, str], tuple[Result, Result]]) -> str:
    """One row per measurement; growth is given on the long clip's row."""
    header = (
        f"{'implementation':<15}{'part':<7}{'clip':<16}{'frames':>7}{'base MiB':>10}{'peak RSS MiB':>14}"
        f"{'phase MiB':>11}{'growth %':>10}{'MiB/frame':>11}{'init s':>8}{'s/frame':>9}"
    )
    lines = [header, "-" * len(header)]
    for (impl, part), (short, long) in pairs.items():
        for result, label in ((short, "short"), (long, "long")):
            spec = result.spec
            size = spec.image_size or 1024
            clip = f"{label} @{size}"
            grow = per_frame = ""
            if result is long:
                grow = f"{growth_pct(short, long):+.1f}"
                per_frame = f"{mib_per_frame(short, long):+.3f}"
            spf = f"{result.s_per_frame:.3f}" if result.tracked_frames else "-"
            lines.append(
                f"{impl:<15}{part:<7}{clip:<16}{spec.frames:>7}{result.baseline_mib:>10.1f}"
                f"{result.peak_mib:>14.1f}{result.peak_mib - result.baseline_mib:>11.1f}{grow:>10}"
                f"{per_frame:>11}{result.init_s:>8.2f}{spf:>9}"
            )
    return "\n".join(lines)


def check(pairs: dict[tuple[str, str], tuple[Result, Result]]) -> list[str]:
    """Our figures that break the limits (empty when all is well)."""
    failures = []
    if ("ours", "track") in pairs:
        grow = growth_pct(*pairs["ours", "track"])
        if grow >= TRACK_GROWTH_LIMIT_PCT:
            failures.append(f"ours/track: peak RSS grows {grow:.1f} % (limit {TRACK_GROWTH_LIMIT_PCT} %)")
        short, long = pairs["ours", "track"]
        for result in (short, long):
            if result.tracked_frames != result.spec.frames:
                failures.append(f"ours/track: tracked {result.tracked_frames} of {result.spec.frames} frames")
    if ("ours", "init") in pairs:
        per_frame = mib_per_frame(*pairs["ours", "init"])
        if per_frame >= INIT_MIB_PER_FRAME_LIMIT:
            failures.append(
                f"ours/init: init_state peak RSS grows {per_frame:.3f} MiB/frame "
                f"(limit {INIT_MIB_PER_FRAME_LIMIT} MiB/frame)"
            )
    return failures


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux
        return "n/a"


def _size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke run: tiny clips, ours only")
    parser.add_argument("--frames-short", type=int, help="track part, short clip (default 24; quick 6)")
    parser.add_argument("--frames-long", type=int, help="track part, long clip (default 240; quick 12)")
    parser.add_argument("--frame-size", type=_size, help="track clip HxW (default 256x256; quick 96x128)")
    parser.add_argument("--image-size", type=int, help="track part model image_size (default 256; quick 128)")
    parser.add_argument(
        "--init-frames-short", type=int, help="init part at 1024 (default 10; --quick skips it unless given)"
    )
    parser.add_argument("--init-frames-long", type=int, help="init part at 1024 (default 110; quick 100)")
    parser.add_argument("--config", default="sam2.1_hiera_tiny")
    parser.add_argument("--repeat", type=int, default=1, help="fresh processes per measurement (medians)")
    parser.add_argument("--skip-official", action="store_true", help="measure ours only")
    parser.add_argument("--skip-track", action="store_true", help="leave out the propagation part")
    parser.add_argument("--skip-init", action="store_true", help="leave out the init_state part at 1024")
    parser.add_argument("--no-check", action="store_true", help="exit 0 whatever our figures are")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--workdir", type=Path, help="where clips and the checkpoint go (default: temp)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    if quick and args.init_frames_short is None and args.init_frames_long is None:
        # Two fresh processes with the 1024 model cost ~25 s (more under load); frame counts bring them back.
        args.skip_init = True
    defaults = dict(
        frames_short=6 if quick else 24,
        frames_long=12 if quick else 240,
        frame_size=(96, 128) if quick else (256, 256),
        image_size=128 if quick else 256,
        init_frames_short=2 if quick else 10,
        # Peaks of the same run vary by up to ~40 MiB (allocator timing); a spread of 100 frames keeps that
        # below 0.4 MiB/frame. Ours costs the same for any length, so the quick run can afford it too.
        init_frames_long=100 if quick else 110,
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if quick:
        args.skip_official = True
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        data = json.loads(args.child)
        spec = Spec(**{**data, "click": tuple(data["click"])})
        print(RESULT_TAG + json.dumps(asdict(child_main(spec))), flush=True)
        return 0

    impls = ["ours"] if args.skip_official else ["ours", "official"]
    started = time.perf_counter()
    print(f"video memory benchmark ({args.config}); load average at start: {_loadavg()}", flush=True)
    if args.quick:
        init = (
            "the init_state part at 1024 is skipped"
            if args.skip_init
            else f"init_state at 1024 on {args.init_frames_short} vs {args.init_frames_long} frames"
        )
        print(
            "quick mode: ours only (the official implementation is left out), tiny clips "
            f"({args.frames_short} vs {args.frames_long} frames at image_size {args.image_size}; {init})",
            flush=True,
        )
    pairs: dict[tuple[str, str], tuple[Result, Result]] = {}
    with tempfile.TemporaryDirectory(prefix="video_memory_") as tmp:
        work = Path(args.workdir or tmp)
        checkpoint = None
        if not args.skip_track and "official" in impls:
            checkpoint = str(make_checkpoint(work / "weights.pt", args.config, args.image_size))
        height, width = args.frame_size
        if not args.skip_track:
            clips = {}
            for n in (args.frames_short, args.frames_long):
                clips[n] = write_clip(work / f"track_{n}", n, height, width)
            for impl in impls:
                results = []
                for n in (args.frames_short, args.frames_long):
                    folder, click = clips[n]
                    spec = Spec(
                        impl, "track", str(folder), n, args.config, args.image_size, checkpoint, click
                    )
                    results.append(measure(spec, args.repeat))
                    print(
                        f"  {impl} track {n} frames: peak {results[-1].peak_mib:.1f} MiB, "
                        f"{results[-1].s_per_frame:.3f} s/frame",
                        flush=True,
                    )
                pairs[impl, "track"] = (results[0], results[1])
        if not args.skip_init:
            for impl in impls:
                results = []
                for n in (args.init_frames_short, args.init_frames_long):
                    folder, _ = write_clip(work / f"init_{n}", n, 96, 128)
                    spec = Spec(impl, "init", str(folder), n, args.config, None, None)
                    results.append(measure(spec, args.repeat))
                    print(
                        f"  {impl} init_state@1024 {n} frames: peak {results[-1].peak_mib:.1f} MiB",
                        flush=True,
                    )
                pairs[impl, "init"] = (results[0], results[1])
        else:
            print(
                "note: the init_state part at the real 1024 configuration was skipped "
                f"({'--quick' if args.quick else '--skip-init'}; to run it in quick mode give "
                "--init-frames-short/--init-frames-long, e.g. 2 and 100). NOT MEASURED: init_state growth.",
                flush=True,
            )

    print()
    print(format_table(pairs))
    parts = {part for _, part in pairs}
    if "track" in parts:
        print(
            "track: init_state + one forward propagation of one clicked object, "
            f"{height}x{width} JPEG frames, model at image_size {args.image_size}, random weights."
        )
    if "init" in parts:
        print("init: init_state alone at the real 1024 configuration (96x128 JPEG frames, random weights).")
    print(
        "peak RSS: VmHWM of a fresh process over the measured phase; phase MiB: peak minus the RSS after "
        "building the predictor; growth: long vs short clip."
    )
    if not all(r.hwm_reset for pair in pairs.values() for r in pair):
        print("warning: the RSS high water mark could not be reset; peaks include model loading")
    print(f"load average at end: {_loadavg()}; total {time.perf_counter() - started:.0f} s")

    if args.json:
        payload = {
            f"{impl}/{part}": {
                "short": asdict(short) | {"s_per_frame": short.s_per_frame},
                "long": asdict(long) | {"s_per_frame": long.s_per_frame},
                "growth_pct": growth_pct(short, long),
                "mib_per_frame": mib_per_frame(short, long),
            }
            for (impl, part), (short, long) in pairs.items()
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))

    failures = check(pairs)
    for failure in failures:
        print(f"LIMIT EXCEEDED: {failure}")
    if failures and not args.no_check:
        return 1
    print("limits: " + ("not checked (--no-check)" if args.no_check else "ok"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
