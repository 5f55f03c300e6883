"""Validation J&F during fine-tuning, computed the way ``apps.vos.inference`` and ``apps.vos.eval`` do.

The validation set is a DAVIS-layout root (``JPEGImages/<video>/``, ``Annotations/<video>/<frame>.png``).
Each video is tracked from its first frame's masks by a video predictor around a copy of the network being
trained (in eval mode; the trained network, its mode and its caches are left alone), the masks go to a
temporary folder, and ``apps.vos.eval.evaluate`` scores them against the annotations (first and last frames
left out, as DAVIS does). A video whose objects appear after the first frame is tracked one object at a
time (``--track_object_appearing_later_in_video``).
"""

from __future__ import annotations

import copy
import gc
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from apps.finetune.errors import FinetuneError
from apps.vos.eval import evaluate, write_csv
from apps.vos.masks import VOSInputError, video_folders
from apps.vos.runner import VOSOptions, run_video
from model.errors import VideoSourceError
from model.network.sam2 import SAM2Model
from model.training.data.layouts import davis_folders
from model.video.video_predictor import SAM2VideoPredictor

SCORES_FOLDER = "validation"  # per-object scores of each validation: OUT/validation/jf_step_000100.csv


@dataclass(frozen=True)
class ValidationScore:
    """One validation: J, F and J&F in percent over ``objects`` scored objects, after ``step`` steps."""

    step: int
    j: float
    f: float
    jf: float
    objects: int
    seconds: float


class Validator:
    """Scores the network on a validation set (rank 0 only).

    Arguments:
      root: the validation set (checked here: `FinetuneError` before training if it cannot be used).
      out: the run folder (per-object scores go to ``out/validation/``).
      precision: "fp32" or "bf16", as the run trains.
    """

    def __init__(self, root: Path, out: Path, precision: str) -> None:
        self.root = Path(root)
        self.out = Path(out)
        self.precision = precision
        self.frames_root, self.masks_root = _layout(self.root)
        self.videos = _usable_videos(self.root, self.frames_root, self.masks_root)
        self.failures: dict[str, str] = {}  # video -> why it could not be tracked (said once)

    def validate(self, network: SAM2Model, step: int) -> tuple[ValidationScore | None, list[str]]:
        """J&F of ``network`` after ``step`` steps, and lines about videos that could not be scored."""
        started = time.perf_counter()
        twin = copy.deepcopy(network).eval()
        predictor = SAM2VideoPredictor(twin, non_overlap_masks=True)
        notes = []
        self.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".validation-", dir=self.out) as scratch:
            for video in self.videos:
                failure = self._track(predictor, video, Path(scratch))
                if failure is not None and video not in self.failures:
                    self.failures[video] = failure
                    notes.append(f"validation: {video} left out: {failure}")
            evaluation = evaluate(self.masks_root, Path(scratch), progress=False)
        del predictor, twin
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        mean = evaluation.mean()
        if mean is None:
            return None, notes + ["validation: no object could be scored (no J&F this time)"]
        write_csv(self.out / SCORES_FOLDER / f"jf_step_{step:06d}.csv", evaluation)
        seconds = time.perf_counter() - started
        return ValidationScore(step, *mean, len(evaluation.scores), seconds), notes

    def _track(self, predictor: SAM2VideoPredictor, video: str, scratch: Path) -> str | None:
        """Track one video into ``scratch/video``; what went wrong, or None."""
        target = scratch / video
        for options in (VOSOptions(), VOSOptions(track_later=True)):
            shutil.rmtree(target, ignore_errors=True)
            try:
                run_video(
                    predictor,
                    self.frames_root / video,
                    self.masks_root / video,
                    target,
                    options,
                    precision=self.precision,
                    scratch_dir=scratch,
                )
                return None
            except VOSInputError as error:
                reason = str(error)
            except VideoSourceError as error:
                reason = str(error)
                break
        shutil.rmtree(target, ignore_errors=True)
        return reason


def _layout(root: Path) -> tuple[Path, Path]:
    folders = davis_folders(root)
    if folders is None:
        raise FinetuneError(
            f"--val {root}: a validation set is a folder with JPEGImages/<video>/ and Annotations/<video>/ "
            "(palette PNGs named after the frames), as DAVIS and this app's DAVIS export lay them out."
        )
    return root / folders[0], root / folders[1]


def _usable_videos(root: Path, frames_root: Path, masks_root: Path) -> list[str]:
    """Videos with frames and ground truth, checking that some have ground truth on more than two frames
    (J&F leaves out the first and the last)."""
    videos = [v for v in video_folders(frames_root) if (masks_root / v).is_dir()]
    if not videos:
        raise FinetuneError(
            f"--val {root}: no video has both a JPEGImages/<video> and an Annotations/<video> folder."
        )
    scored = [v for v in videos if len(list((masks_root / v).glob("*.png"))) > 2]
    if not scored:
        raise FinetuneError(
            f"--val {root}: J&F needs ground truth on frames after the first, and no video has more than two "
            "annotated frames (the first and last are left out of J&F). Give a set annotated on every frame."
        )
    return videos
