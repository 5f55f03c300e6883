"""One video of a video object segmentation (VOS) dataset: masks in, propagated masks out, as the official
``tools/vos_inference.py`` of SAM 2 computes them.

Two ways to run a video, chosen by ``VOSOptions.track_later``:

* **together** (the official ``vos_inference``): the masks of the first frame (or, with ``use_all_masks``,
  of every annotated frame) prompt all objects in one state, and one forward propagation from the earliest
  prompted frame gives every frame from there on. Every object must be on the first annotated frame.
* **one object at a time** (``vos_separate_inference_per_object``, for datasets whose objects appear later,
  such as LVOS and YouTube-VOS): each object is prompted with its first non-empty mask (or all of them) and
  propagated forward from there on its own; then, frame by frame, the objects are combined as if their
  logits were stacked (-1024 where an object has no output yet) and, in the palette layout, each pixel went
  to the object with the highest logit. Every frame of the video gets an output.

Masks are ``logits > score_thresh``. Output PNGs are written at the frames' size, named after the frames,
with the palette of the input masks (else DAVIS's). See `apps.vos.masks` for the two layouts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.vos.masks import (
    MaskWriter,
    ObjectMasks,
    Palette,
    VOSInputError,
    frame_files,
    object_folders,
    read_frame_objects,
)
from apps.vos.merge import LabelMerger
from model.loading.precision import Precision, inference_autocast
from model.network.sam2 import NO_OBJECT_LOGIT
from model.video.video_frames import ImageFilesSource

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each frame a video's run completes (tracked or written)."""

LATER_HINT = (
    "if objects of this dataset first appear after the first annotated frame (LVOS, YouTube-VOS), pass "
    "--track_object_appearing_later_in_video"
)


@dataclass(frozen=True)
class VOSOptions:
    """How to read the masks of a video and run it (the official script's flags).

    per_object: masks are ``<object id>/<frame>.png`` folders (SA-V), not one palette PNG per frame.
    track_later: run each object on its own from its first mask (objects may appear after frame 0).
    use_all_masks: prompt with every annotated frame, not only the first one.
    score_thresh: a pixel belongs to an object where its logit is above this.
    """

    per_object: bool = False
    track_later: bool = False
    use_all_masks: bool = False
    score_thresh: float = 0.0


def run_video(
    predictor: Any,
    video_dir: Path,
    mask_dir: Path,
    out_dir: Path,
    options: VOSOptions = VOSOptions(),
    precision: Precision = "fp32",
    progress: Progress | None = None,
    scratch_dir: Path | None = None,
) -> int:
    """Segment one video and write its masks; returns the number of frames written.

    Arguments:
      predictor: a ``SAM2VideoPredictor`` built with ``non_overlap_masks = not options.per_object``.
      video_dir: the video's JPEG frames (``00000.jpg``, ...).
      mask_dir: the video's input masks, in the layout ``options.per_object`` says.
      out_dir: where the video's output masks go (created; the caller makes it fresh).
      precision: "fp32" or "bf16" (autocast on the predictor's device).
      progress: see `Progress`.
      scratch_dir: where the one-object-at-a-time palette run keeps its per-frame merge on disk while it
        runs (a temporary folder inside it, removed after; default: the system's temporary folder).
    Raises `VOSInputError` for missing or inconsistent inputs (before any tracking), and
    ``model.errors.VideoSourceError`` for a frame that cannot be decoded; both messages name the file.
    """
    video_dir, mask_dir, out_dir = Path(video_dir), Path(mask_dir), Path(out_dir)
    files = frame_files(video_dir)
    if not mask_dir.is_dir():
        raise VOSInputError(f"there are no input masks for this video: {mask_dir} does not exist")
    frames = ImageFilesSource(files, name=str(video_dir))
    names = [path.stem for path in files]
    with torch.inference_mode(), inference_autocast(predictor.device, precision):
        if options.track_later:
            return _run_one_object_at_a_time(
                predictor, frames, names, mask_dir, out_dir, options, progress, scratch_dir
            )
        return _run_together(predictor, frames, names, mask_dir, out_dir, options, progress)


# ---------------------------------------------------------------------------------------------- together


def _run_together(predictor, frames, names, mask_dir, out_dir, options, progress) -> int:
    size = (frames.width, frames.height)
    prompts, palette = _prompts_together(mask_dir, names, options.per_object, options.use_all_masks, size)
    writer = MaskWriter(out_dir, names, options.per_object, palette, frames.height, frames.width)
    state = predictor.init_state(frames)
    try:
        for frame_idx, objects in prompts.items():
            for obj_id, mask in objects.items():
                predictor.add_new_mask(state, frame_idx, obj_id, mask)
        total = len(names) - min(prompts)
        written = 0
        for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
            above = (logits.float() > options.score_thresh).cpu().numpy()  # N_obj, 1, H, W
            writer.write(frame_idx, {obj_id: above[i, 0] for i, obj_id in enumerate(obj_ids)})
            written += 1
            if progress is not None:
                progress(written, total)
    finally:
        state.close()
    return written


def _prompts_together(
    mask_dir: Path, names: list[str], per_object: bool, use_all_masks: bool, size: tuple[int, int]
) -> tuple[dict[int, ObjectMasks], Palette | None]:
    """The masks that prompt the joint run, by frame index, and the palette of the last file read."""
    if use_all_masks:
        frame_inds = _annotated_frames(mask_dir, names, per_object)
        if not frame_inds:
            where = "<object id>/<frame>.png" if per_object else "<frame>.png"
            raise VOSInputError(
                f"no input mask for any frame of this video in {mask_dir} (expected {where} files named "
                "after the JPEG frames)"
            )
    else:
        frame_inds = [0]
    prompts: dict[int, ObjectMasks] = {}
    obj_ids: set[int] | None = None
    palette = None
    for idx in frame_inds:
        missing = [path for path in _mask_files(mask_dir, names[idx], per_object) if not path.exists()]
        if missing:
            raise VOSInputError(f"there is no input mask {missing[0]} for frame {names[idx]}; {LATER_HINT}")
        objects, palette = read_frame_objects(mask_dir, names[idx], per_object, frame_size=size)
        if obj_ids is None:
            obj_ids = set(objects)
        new = sorted(set(objects) - obj_ids)
        if new:
            raise VOSInputError(
                f"object {new[0]} appears on frame {names[idx]} but not on the first annotated frame "
                f"{names[frame_inds[0]]}; {LATER_HINT}"
            )
        prompts[idx] = objects
    if not obj_ids and per_object:
        raise VOSInputError(f"no object to track: {mask_dir} holds no object folder (001, 002, ...)")
    if not obj_ids:
        raise VOSInputError(
            f"the mask of frame {names[frame_inds[0]]} holds no object (all background); {LATER_HINT}"
        )
    return prompts, palette


def _mask_files(mask_dir: Path, name: str, per_object: bool) -> list[Path]:
    """The mask file(s) of one frame: ``<frame>.png``, or one per object folder."""
    folders = list(object_folders(mask_dir).values()) if per_object else [mask_dir]
    return [folder / f"{name}.png" for folder in folders]


def _annotated_frames(mask_dir: Path, names: list[str], per_object: bool) -> list[int]:
    """Indices of the frames with a mask file (for any object, in the per-object layout)."""
    return [
        idx
        for idx, name in enumerate(names)
        if any(path.exists() for path in _mask_files(mask_dir, name, per_object))
    ]


# ---------------------------------------------------------------------------------- one object at a time


def _run_one_object_at_a_time(predictor, frames, names, mask_dir, out_dir, options, progress, scratch_dir):
    size = (frames.width, frames.height)
    prompts, palette = _prompts_per_object(mask_dir, names, options.per_object, options.use_all_masks, size)
    writer = MaskWriter(out_dir, names, options.per_object, palette, frames.height, frames.width)
    num_frames = len(names)
    starts = {obj_id: min(by_frame) for obj_id, by_frame in prompts.items()}
    total = sum(num_frames - start for start in starts.values()) + (0 if options.per_object else num_frames)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    state = predictor.init_state(frames)
    with tempfile.TemporaryDirectory(prefix="vos-merge-", dir=scratch_dir) as scratch:
        merger = None
        if not options.per_object:
            merger = LabelMerger(num_frames, frames.height, frames.width, options.score_thresh, Path(scratch))
        try:
            for obj_id in sorted(prompts):
                predictor.reset_state(state)
                for frame_idx in sorted(prompts[obj_id]):
                    predictor.add_new_mask(state, frame_idx, obj_id, prompts[obj_id][frame_idx])
                tracked = set()
                for frame_idx, _, logits in predictor.propagate_in_video(
                    state, start_frame_idx=starts[obj_id], reverse=False
                ):
                    scores = logits[0, 0].float().cpu().numpy()
                    if merger is not None:
                        merger.add(obj_id, frame_idx, scores)
                    else:
                        writer.write(frame_idx, {obj_id: scores > options.score_thresh})
                    tracked.add(frame_idx)
                    tick()
                # Frames the object has no output on count as logits of -1024 everywhere.
                for frame_idx in sorted(set(range(num_frames)) - tracked):
                    if merger is not None:
                        merger.add_missing(obj_id, frame_idx)
                    else:
                        empty = np.full((frames.height, frames.width), NO_OBJECT_LOGIT > options.score_thresh)
                        writer.write(frame_idx, {obj_id: empty})
            if merger is not None:
                for frame_idx in range(num_frames):
                    writer.write_labels(frame_idx, merger.labels(frame_idx))
                    tick()
        finally:
            state.close()
            if merger is not None:
                merger.close()
    return num_frames


def _prompts_per_object(
    mask_dir: Path, names: list[str], per_object: bool, use_all_masks: bool, size: tuple[int, int]
) -> tuple[dict[int, dict[int, np.ndarray]], Palette | None]:
    """Per object id, its prompt masks by frame index (its first non-empty mask, or all of them), and the
    palette the official script would write with: that of the last frame it reads (every frame in the
    per-object layout, where a frame without files gives none)."""
    prompts: dict[int, dict[int, np.ndarray]] = {}
    palette = None
    for idx, name in enumerate(names):
        if not per_object and not (mask_dir / f"{name}.png").exists():
            continue
        objects, palette = read_frame_objects(mask_dir, name, per_object, allow_missing=True, frame_size=size)
        for obj_id, mask in objects.items():
            if not mask.any() or (obj_id in prompts and not use_all_masks):
                continue
            prompts.setdefault(obj_id, {})[idx] = mask
    if not prompts:
        layout = "<object id>/<frame>.png" if per_object else "<frame>.png"
        other = "without" if per_object else "with"
        raise VOSInputError(
            f"no object in any mask of this video in {mask_dir} (expected {layout} files named after the "
            f"JPEG frames; if the masks are in the other layout, run {other} --per_obj_png_file)"
        )
    return prompts, palette
