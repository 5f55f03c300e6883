"""The measurements of ``benchmarks.compare``: each one runs ours and the official side by side.

Every measurement alternates the two implementations (ours, official, ours, official, ...) after one
unmeasured warm-up each, so a change of load on the machine hits both sides alike. Tracking goes further:
the two propagation generators are stepped in turn, one frame each, and correction clicks alternate click
by click. A sample is a wall time in seconds (synchronised on CUDA).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.compare_setup import SIDES, Side, TrackClip, precision_context, release, synchronize, timed
from benchmarks.video_memory import Result, Spec, run_child

Samples = dict[str, list[float]]  # side ("ours" | "official") -> seconds (or MiB) per run


def alternate(runs: dict[str, Callable[[], float]], repeats: int, warmup: bool = True) -> Samples:
    """One unmeasured ``run()`` per side (if ``warmup``), then ``repeats`` rounds of one run per side."""
    if warmup:
        for run in runs.values():
            run()
    samples: Samples = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(run())
    return samples


# ---------------------------------------------------------------------------------------------- images


def measure_image(
    sides: dict[str, Side],
    image: np.ndarray,
    point: tuple[float, float],
    device: str,
    precision: str,
    repeats: int,
) -> dict[str, Samples]:
    """``embedding``: ``set_image(image)``; ``click``: one positive point on the embedded image, 3 masks."""
    prompt = dict(
        point_coords=np.array([point], np.float32), point_labels=np.array([1]), multimask_output=True
    )
    with precision_context(device, precision):
        embed = alternate(
            {
                name: (lambda s=side: timed(lambda: s.image.set_image(image), device))
                for name, side in sides.items()
            },
            repeats,
        )
        # Every predictor now holds the embedding of ``image``.
        click = alternate(
            {
                name: (lambda s=side: timed(lambda: s.image.predict(**prompt), device))
                for name, side in sides.items()
            },
            repeats,
        )
    return {"embedding": embed, "click": click}


# ---------------------------------------------------------------------------------------------- opening


def open_run(side: Side, folder: Path, point: tuple[float, float], device: str) -> Callable[[], float]:
    """A run of open-to-first-mask: ``init_state`` on a new video plus one click on frame 0, wall time."""

    def run() -> float:
        release(device)
        holder = {}

        def first_mask() -> None:
            holder["state"] = side.video.init_state(str(folder))
            side.video.add_new_points_or_box(holder["state"], 0, 1, points=[list(point)], labels=[1])

        elapsed = timed(first_mask, device)
        holder.clear()  # the official state holds every frame: free it before the other side runs
        release(device)
        return elapsed

    return run


def measure_open(
    sides: dict[str, Side],
    clips: dict[int, tuple[Path, tuple[float, float]]],
    device: str,
    precision: str,
    repeats: int,
) -> dict[str, Samples]:
    """``open_<frames>`` for each clip; the shortest clip's runs warm both sides up."""
    results = {}
    with precision_context(device, precision):
        for index, (frames, (folder, point)) in enumerate(sorted(clips.items())):
            runs = {name: open_run(side, folder, point, device) for name, side in sides.items()}
            results[f"open_{frames}"] = alternate(runs, repeats, warmup=index == 0)
    return results


# ---------------------------------------------------------------------------------------------- tracking


@dataclass
class TrackRecord:
    """What one side did in one tracking pass."""

    steady_s: list[float] = field(default_factory=list)  # per tracked frame at index >= skip
    first_click_s: list[float] = field(default_factory=list)
    next_clicks_s: list[float] = field(default_factory=list)
    masks: dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> N, H, W bool at video resolution


def track_pass(
    sides: dict[str, Side],
    clip: TrackClip,
    num_objects: int,
    device: str,
    skip: int,
    clicks: int = 0,
    click_frame: int | None = None,
    max_frames: int | None = None,
    keep_masks: bool = False,
) -> dict[str, TrackRecord]:
    """Open the clip on every side, click ``num_objects`` objects on frame 0, propagate forward (the sides
    step in turn, one frame each), then make ``clicks`` correction clicks on ``click_frame`` for object 1
    (``clear_old_points=False``, one more point each time; the sides click in turn). Runs under the caller's
    precision context."""
    click_frame = clip.click_frame if click_frame is None else click_frame
    states = {}
    for name, side in sides.items():
        states[name] = side.video.init_state(str(clip.folder))
        for obj_id, point in enumerate(clip.object_points[:num_objects], start=1):
            side.video.add_new_points_or_box(states[name], 0, obj_id, points=[list(point)], labels=[1])
    records = {name: TrackRecord() for name in sides}
    streams = {
        name: iter(side.video.propagate_in_video(states[name], max_frame_num_to_track=max_frames))
        for name, side in sides.items()
    }
    while streams:
        for name in list(streams):
            synchronize(device)
            start = time.perf_counter()
            try:
                frame_idx, _, logits = next(streams[name])
            except StopIteration:
                del streams[name]
                continue
            synchronize(device)
            elapsed = time.perf_counter() - start
            if frame_idx >= skip:
                records[name].steady_s.append(elapsed)
            if keep_masks:
                records[name].masks[frame_idx] = (logits[:, 0] > 0).cpu()
    for k, (x, y, label) in enumerate(clip.corrections[:clicks]):
        for name, side in sides.items():
            click = functools.partial(
                side.video.add_new_points_or_box,
                states[name],
                click_frame,
                1,
                points=[[x, y]],
                labels=[label],
                clear_old_points=False,
            )
            elapsed = timed(click, device)
            (records[name].first_click_s if k == 0 else records[name].next_clicks_s).append(elapsed)
    states.clear()
    release(device)
    return records


def measure_video(
    sides: dict[str, Side], clip: TrackClip, device: str, precision: str, skip: int, passes: int
) -> tuple[dict[str, Samples], dict[str, dict[int, torch.Tensor]]]:
    """The tracking rows and the masks of the last 1-object pass (for the agreement rows).

    Warm-up: a short pass with three objects (one tracked frame and one correction click on it), which runs
    every code path the measured passes use. Then ``passes`` times: a 1-object pass with the correction
    clicks, and a 3-object pass. ``track_<n>`` samples are the frames at index ``>= skip`` (a full memory
    bank); ``correction_first`` the first click on the tracked frame, ``correction_next`` the others.
    """
    keys = ("track_1", "track_3", "correction_first", "correction_next")
    samples: dict[str, Samples] = {key: {name: [] for name in sides} for key in keys}
    masks: dict[str, dict[int, torch.Tensor]] = {}
    with precision_context(device, precision):
        track_pass(sides, clip, 3, device, skip, clicks=1, click_frame=1, max_frames=1)
        for index in range(passes):
            last = index == passes - 1
            one = track_pass(sides, clip, 1, device, skip, clicks=len(clip.corrections), keep_masks=last)
            three = track_pass(sides, clip, 3, device, skip)
            for name in sides:
                samples["track_1"][name] += one[name].steady_s
                samples["track_3"][name] += three[name].steady_s
                samples["correction_first"][name] += one[name].first_click_s
                samples["correction_next"][name] += one[name].next_clicks_s
                if last:
                    masks[name] = one[name].masks
    return samples, masks


def measure_compiled(sides: dict[str, Side], clip: TrackClip, device: str, skip: int) -> Samples:
    """Steady seconds per tracked frame of the ``vos_optimized=True`` predictors (bf16, 1 object).

    The warm-up is a whole pass: ``torch.compile`` compiles on first use and again for new shapes.
    """
    with precision_context(device, "bf16"):
        track_pass(sides, clip, 1, device, skip)
        records = track_pass(sides, clip, 1, device, skip)
    return {name: record.steady_s for name, record in records.items()}


def measure_cuda_memory(sides: dict[str, Side], clip: TrackClip, device: str, skip: int) -> dict[str, float]:
    """Peak CUDA memory (MiB above what was allocated before) of a bf16 1-object pass, one side at a time."""
    peaks = {}
    for name, side in sides.items():
        release(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with precision_context(device, "bf16"):
            track_pass({name: side}, clip, 1, device, skip)
        peaks[name] = (torch.cuda.max_memory_allocated() - before) / 2**20
    return peaks


# ---------------------------------------------------------------------------------------------- memory


def measure_rss(
    config: str,
    checkpoint: Path,
    clips: dict[int, tuple[Path, tuple[float, float]]],
    image_size: int,
    timeout: float = 3600.0,
) -> dict[str, dict[int, Result]]:
    """Peak RSS of tracking each clip, each side in a fresh process (``benchmarks.video_memory``).

    The child builds one predictor on the CPU in fp32, resets its RSS high water mark, then runs
    ``init_state``, one click on frame 0 and a full forward propagation: ``Result.peak_mib`` is the peak
    RSS of the whole process during that phase, so model loading's transient peak is left out.
    """
    peaks: dict[str, dict[int, Result]] = {name: {} for name in SIDES}
    for frames, (folder, point) in sorted(clips.items()):
        for name in SIDES:
            spec = Spec(name, "track", str(folder), frames, config, image_size, str(checkpoint), point)
            result = run_child(spec, timeout)
            if result.tracked_frames != frames:
                raise RuntimeError(f"{name} tracked {result.tracked_frames} of {frames} frames")
            peaks[name][frames] = result
    return peaks
