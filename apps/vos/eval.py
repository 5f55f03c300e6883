"""J&F of predicted video masks against ground truth, per object, per video and over a dataset.

    python -m apps.vos.eval --gt_root G --pred_root P [--output_csv F] [--strict] [--all_frames]

``G`` and ``P`` hold one folder per video, each in either mask layout (`apps.vos.masks`): palette PNGs
``<video>/<frame>.png`` (DAVIS, MOSE) or per-object folders ``<video>/<object id>/<frame>.png`` (SA-V); the
two roots may use different layouts. The measures are those of the official SA-V evaluator and DAVIS 2017
(`apps.vos.metrics`), with its conventions:

* the frames evaluated are those with a ground-truth PNG, less the first and the last (the first one is the
  prompt in semi-supervised evaluation); ``--all_frames`` keeps them;
* an object is scored from the first evaluated frame on which it appears in the ground truth or the
  prediction; objects that appear only in the prediction are not scored;
* J and F of an object are their means over its frames, in percent; J&F is their mean; the dataset's J and F
  are means over all scored objects of all videos.

What is missing is said by name: videos without a prediction, predicted frames or objects that are not
there (scored as empty predictions). ``--strict`` turns any of that into an error (exit status 1, no CSV).
Writes ``video,object,J,F,J&F`` rows and a final ``mean`` row to ``--output_csv`` (default ``P/jf.csv``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apps.vos.masks import (
    VOSInputError,
    is_hidden,
    labels_to_objects,
    natural_key,
    object_folders,
    read_label_png,
    video_folders,
)
from apps.vos.metrics import boundary_f_measure, region_similarity

MAX_LISTED_VIDEOS = 5  # videos without a prediction named one per line; more are summed up in one line


@dataclass
class ObjectScore:
    """One object of one video: J and F in percent, over ``frames`` evaluated frames."""

    video: str
    object: int
    j: float
    f: float
    frames: int

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


@dataclass
class VideoResult:
    """What evaluating one video gave: its scored objects, what was missing, or why it failed."""

    video: str
    scores: list[ObjectScore] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what the prediction lacks, one line each
    notes: list[str] = field(default_factory=list)  # other remarks (objects left unscored)
    error: str | None = None
    unpredicted: bool = False  # the prediction root has no folder for this video


# ---------------------------------------------------------------------------------------------- reading


class MaskFolder:
    """One video's masks in either layout, read frame by frame (nothing kept in memory)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.objects = object_folders(self.folder)  # empty for the palette layout
        self.per_object = bool(self.objects)

    def palette_frames(self) -> list[str]:
        return _png_stems(self.folder)

    def object_frames(self, obj_id: int) -> list[str]:
        return _png_stems(self.objects[obj_id])

    def frame_objects(self, frame: str) -> tuple[dict[int, np.ndarray], tuple[int, ...]] | None:
        """Every object's mask on a frame (H, W bool) and the frame's shape, or None if the frame has no
        file at all."""
        if not self.per_object:
            path = self.folder / f"{frame}.png"
            if not path.exists():
                return None
            labels, _ = read_label_png(path)
            return labels_to_objects(labels), labels.shape
        found, shape = {}, None
        for obj_id, folder in self.objects.items():
            path = folder / f"{frame}.png"
            if path.exists():
                labels, _ = read_label_png(path)
                found[obj_id] = labels > 0
                shape = labels.shape
        return None if shape is None else (found, shape)

    def object_mask(self, frame: str, obj_id: int) -> np.ndarray | None:
        """One object's mask on a frame; an all-false mask if the frame exists without it; None if the
        frame (or, per object, that object's file) is missing."""
        if self.per_object:
            folder = self.objects.get(obj_id)
            path = None if folder is None else folder / f"{frame}.png"
            if path is None or not path.exists():
                return None
            labels, _ = read_label_png(path)
            return labels > 0
        path = self.folder / f"{frame}.png"
        if not path.exists():
            return None
        labels, _ = read_label_png(path)
        return labels == obj_id


def _png_stems(folder: Path) -> list[str]:
    return sorted((p.stem for p in folder.glob("*.png") if not is_hidden(p)), key=natural_key)


def _video_names(root: Path) -> list[str]:
    return sorted(video_folders(root), key=natural_key)


# ---------------------------------------------------------------------------------------------- scoring


class _Accumulator:
    """Per-object J and F over frames, an object counted from the first frame it appears on (either side)."""

    def __init__(self) -> None:
        self.j: dict[int, list[float]] = {}
        self.f: dict[int, list[float]] = {}
        self.in_gt: set[int] = set()

    def feed(self, gt: dict[int, np.ndarray], pred: dict[int, np.ndarray], shape: tuple[int, int]) -> None:
        self.in_gt |= set(gt)
        for obj_id in set(gt) | set(pred):
            self.j.setdefault(obj_id, [])
            self.f.setdefault(obj_id, [])
        empty = np.zeros(shape, bool)
        for obj_id in self.j:
            g = gt.get(obj_id, empty)
            p = pred.get(obj_id, empty)
            self.j[obj_id].append(region_similarity(p, g))
            self.f[obj_id].append(boundary_f_measure(p, g))

    def scores(self, video: str) -> list[ObjectScore]:
        scores = []
        for obj_id in sorted(self.in_gt):
            j, f = 100 * float(np.mean(self.j[obj_id])), 100 * float(np.mean(self.f[obj_id]))
            scores.append(ObjectScore(video, obj_id, j, f, len(self.j[obj_id])))
        return scores


def _check_shape(truth_shape: tuple[int, ...], shape: tuple[int, ...], frame: str) -> None:
    if shape != truth_shape:
        raise VOSInputError(
            f"frame {frame}: the prediction is {shape[1]}x{shape[0]} but the ground truth is "
            f"{truth_shape[1]}x{truth_shape[0]} (WxH)"
        )


def evaluate_video(gt_dir: Path, pred_dir: Path, video: str, all_frames: bool = False) -> VideoResult:
    """J and F of every ground-truth object of one video (see the module docstring for the conventions)."""
    result = VideoResult(video)
    try:
        gt = MaskFolder(gt_dir)
        if not pred_dir.is_dir():
            result.missing.append(f"no prediction (expected the folder {pred_dir})")
            result.unpredicted = True
            return result
        pred = MaskFolder(pred_dir)
        if gt.per_object:
            for obj_id in gt.objects:
                frames = _evaluated(gt.object_frames(obj_id), all_frames)
                _score_object(gt, pred, obj_id, frames, result)
        else:
            frames = _evaluated(gt.palette_frames(), all_frames)
            if not frames:
                result.notes.append("no ground-truth frame left to evaluate")
            _score_palette(gt, pred, frames, result)
    except VOSInputError as error:
        result.error = str(error)
        result.scores.clear()
    return result


def _evaluated(frames: list[str], all_frames: bool) -> list[str]:
    return frames if all_frames else frames[1:-1]


def _score_palette(gt: MaskFolder, pred: MaskFolder, frames: list[str], result: VideoResult) -> None:
    acc = _Accumulator()
    missing = []
    for frame in frames:
        labels, _ = read_label_png(gt.folder / f"{frame}.png")
        found = pred.frame_objects(frame)
        if found is None:
            missing.append(frame)
            predicted = {}
        else:
            predicted, shape = found
            _check_shape(labels.shape, shape, frame)
        acc.feed(labels_to_objects(labels), predicted, labels.shape)
    if missing:
        result.missing.append(_missing_frames(missing, "predicted frames"))
    result.scores += acc.scores(result.video)


def _score_object(
    gt: MaskFolder, pred: MaskFolder, obj_id: int, frames: list[str], result: VideoResult
) -> None:
    acc = _Accumulator()
    missing = []
    for frame in frames:
        truth = gt.object_mask(frame, obj_id)
        predicted = pred.object_mask(frame, obj_id)
        if predicted is None:
            missing.append(frame)
            predicted = np.zeros_like(truth)
        _check_shape(truth.shape, predicted.shape, frame)
        present_truth = {obj_id: truth} if truth.any() else {}
        present_pred = {obj_id: predicted} if predicted.any() else {}
        acc.feed(present_truth, present_pred, truth.shape)
    if missing:
        result.missing.append(_missing_frames(missing, f"predicted frames of object {obj_id}"))
    scores = acc.scores(result.video)
    if not scores and frames:
        result.notes.append(f"object {obj_id} is empty on every evaluated ground-truth frame: not scored")
    result.scores += scores


def _missing_frames(frames: list[str], what: str) -> str:
    shown = ", ".join(f"{f}.png" for f in frames[:5]) + (", ..." if len(frames) > 5 else "")
    return f"{len(frames)} {what} missing ({shown}): scored as empty predictions"


# ---------------------------------------------------------------------------------------------- dataset


@dataclass
class Evaluation:
    results: list[VideoResult]
    unmatched: list[str]  # predicted videos that have no ground truth

    @property
    def scores(self) -> list[ObjectScore]:
        return [s for r in self.results for s in r.scores]

    def mean(self) -> tuple[float, float, float] | None:
        scores = self.scores
        if not scores:
            return None
        j = float(np.mean([s.j for s in scores]))
        f = float(np.mean([s.f for s in scores]))
        return j, f, (j + f) / 2


def evaluate(gt_root: Path, pred_root: Path, all_frames: bool = False, progress: bool = True) -> Evaluation:
    """Evaluate every ground-truth video of ``gt_root`` against ``pred_root``."""
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    for root, what in ((gt_root, "ground-truth"), (pred_root, "prediction")):
        if not root.is_dir():
            raise VOSInputError(f"the {what} root {root} is not a folder")
    videos = _video_names(gt_root)
    if not videos:
        raise VOSInputError(f"the ground-truth root {gt_root} holds no video folders")
    results = []
    for video in _progress(videos, progress):
        results.append(evaluate_video(gt_root / video, pred_root / video, video, all_frames))
    unmatched = sorted(set(_video_names(pred_root)) - set(videos), key=natural_key)
    return Evaluation(results, unmatched)


def _progress(videos: list[str], enabled: bool) -> Iterable[str]:
    if not enabled:
        return videos
    from tqdm import tqdm

    return tqdm(videos, desc="videos", unit="video", file=sys.stderr, leave=False)


# ---------------------------------------------------------------------------------------------- output


def format_table(evaluation: Evaluation) -> str:
    """The per-object scores and the mean as a fixed-width table (percent, one decimal)."""
    scores = evaluation.scores
    width = max([len(s.video) for s in scores] + [len("video")]) + 2
    lines = [f"{'video':<{width}}{'object':>7}{'J':>8}{'F':>8}{'J&F':>8}"]
    for s in scores:
        lines.append(f"{s.video:<{width}}{s.object:>7}{s.j:>8.1f}{s.f:>8.1f}{s.jf:>8.1f}")
    mean = evaluation.mean()
    if mean is not None:
        j, f, jf = mean
        lines.append(f"{'mean':<{width}}{'':>7}{j:>8.1f}{f:>8.1f}{jf:>8.1f}")
    return "\n".join(lines)


def write_csv(path: Path, evaluation: Evaluation) -> Path:
    """``video,object,J,F,J&F`` rows (percent), then ``mean,,J,F,J&F`` over all scored objects."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "object", "J", "F", "J&F"])
        for s in evaluation.scores:
            writer.writerow([s.video, s.object, f"{s.j:.4f}", f"{s.f:.4f}", f"{s.jf:.4f}"])
        mean = evaluation.mean()
        if mean is not None:
            writer.writerow(["mean", "", *(f"{v:.4f}" for v in mean)])
    return path


def problems(evaluation: Evaluation) -> tuple[list[str], list[str]]:
    """(what is missing, what failed) as lines naming the video."""
    unpredicted = [r.video for r in evaluation.results if r.unpredicted]
    grouped = len(unpredicted) > MAX_LISTED_VIDEOS  # e.g. a validation split scored against all annotations
    missing = [
        f"{r.video}: {line}"
        for r in evaluation.results
        for line in r.missing
        if not (grouped and r.unpredicted)
    ]
    if grouped:
        shown = ", ".join(unpredicted[:MAX_LISTED_VIDEOS])
        missing.insert(
            0,
            f"{len(unpredicted)} ground-truth videos have no prediction folder and are left out: "
            f"{shown}, ...",
        )
    missing += [
        f"{v}: predicted, but there is no ground truth for it (not evaluated)" for v in evaluation.unmatched
    ]
    failed = [f"{r.video}: {r.error}" for r in evaluation.results if r.error]
    return missing, failed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m apps.vos.eval",
        description="J (region similarity), F (boundary accuracy) and J&F of predicted video masks.",
    )
    parser.add_argument("--gt_root", type=Path, required=True, help="ground truth: one folder per video")
    parser.add_argument("--pred_root", type=Path, required=True, help="predictions: one folder per video")
    parser.add_argument(
        "--output_csv", type=Path, default=None, help="CSV to write (default: PRED_ROOT/jf.csv)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit status 1, no CSV) when any video, frame or object is missing from the predictions",
    )
    parser.add_argument(
        "--all_frames",
        action="store_true",
        help="also evaluate the first and last ground-truth frames (skipped by default, as DAVIS does)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        evaluation = evaluate(args.gt_root, args.pred_root, args.all_frames, progress=not args.quiet)
    except VOSInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    missing, failed = problems(evaluation)
    for r in evaluation.results:
        for note in r.notes:
            print(f"note: {r.video}: {note}", file=sys.stderr)
    for line in missing:
        print(f"{'error' if args.strict else 'missing'}: {line}", file=sys.stderr)
    for line in failed:
        print(f"error: {line} (video left out)", file=sys.stderr)
    if args.strict and missing:
        print(f"--strict: {len(missing)} problem(s) with the predictions; nothing written", file=sys.stderr)
        return 1
    print(format_table(evaluation))
    if evaluation.mean() is None:
        print("error: no object could be scored", file=sys.stderr)
        return 1
    path = write_csv(args.output_csv or args.pred_root / "jf.csv", evaluation)
    j, f, jf = evaluation.mean()
    print(f"\nJ&F {jf:.1f}  J {j:.1f}  F {f:.1f} over {len(evaluation.scores)} objects; CSV: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
