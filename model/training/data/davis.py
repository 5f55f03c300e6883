"""DAVIS / MOSE / YouTube-VOS: a root with ``JPEGImages/<video>/<frame>.jpg`` and
``Annotations/<video>/<frame>.png``, as our app's DAVIS export and ``apps.vos`` write them.

An annotation PNG is a label image: palette ("P") or grey ("L") pixels whose value is an object id; 0 is
background and 255 ("void", the DAVIS ignore label) counts as background. A frame is annotated when a PNG of
the same name is there, so YouTube-VOS's sparse annotations (every 5th frame of the full frame set) give
only those frames to the sampler, as the official ``PNGRawDataset`` does with its train split (whose frame
folders hold only the annotated frames). Names match by number when both are numbers ("00005" = "5").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.training.data.images import (
    IGNORE_LABEL,
    FrameCheck,
    check_image,
    check_label_png,
    load_labels,
    load_rgb,
    object_ids,
)
from model.training.data.report import Problem, TrainingDataError
from model.training.data.source import Source, VideoItem
from model.video.video_frames import list_frame_files

LEFT_OUT = "those frames left out"
SKIPPED = "video skipped"


@dataclass(frozen=True)
class _VideoFiles:
    """File names of a video's annotated frames: frame index -> frame image, and -> annotation PNG."""

    frames: dict[int, str]
    masks: dict[int, str]


class DavisSource(Source):
    """Videos as folders of frames with palette PNG annotations (DAVIS, MOSE, YouTube-VOS layouts).

    Arguments:
        root: the folder holding ``JPEGImages`` and ``Annotations`` (for DAVIS 2017, the resolution
            folder inside them is picked by `open_source`, or give ``frames_folder``/``masks_folder``).
        videos: the videos to use (e.g. from ``ImageSets/2017/train.txt``); None: every folder.
        frames_folder, masks_folder: the two folders under ``root``.
    """

    layout = "DAVIS/MOSE/YouTube-VOS folders"

    def __init__(
        self,
        root: str | Path,
        *,
        videos: Sequence[str] | None = None,
        frames_folder: str = "JPEGImages",
        masks_folder: str = "Annotations",
    ) -> None:
        root = Path(root)
        super().__init__(str(root))
        self.frames_root = root / frames_folder
        self.masks_root = root / masks_folder
        self.wanted = None if videos is None else list(videos)
        self._files: dict[str, _VideoFiles] = {}

    # -- the check -----------------------------------------------------------------------------------------

    def video_names(self) -> tuple[list[str], list[Problem]]:
        if not self.frames_root.is_dir() or not self.masks_root.is_dir():
            missing = self.frames_root if not self.frames_root.is_dir() else self.masks_root
            return [], [self.problem("", f"there is no {missing.name} folder", "nothing to train on here")]
        if self.wanted is not None:
            names = self.wanted
        else:
            names = sorted(_subfolders(self.frames_root) | _subfolders(self.masks_root))
        if not names:
            issue = f"no videos: {self.frames_root.name} holds no video folders"
            return [], [self.problem("", issue, "nothing to train on here")]
        return names, []

    def check_video(self, name: str) -> tuple[VideoItem | None, list[Problem]]:
        frame_dir, mask_dir = self.frames_root / name, self.masks_root / name
        frames_name, masks_name = self.frames_root.name, self.masks_root.name
        if not frame_dir.is_dir():
            return None, [self.problem(name, f"no frame folder {frames_name}/{name}", SKIPPED)]
        if not mask_dir.is_dir():
            return None, [self.problem(name, f"no annotation folder {masks_name}/{name}", SKIPPED)]
        frames = list_frame_files(frame_dir)
        if not frames:
            issue = "its frame folder holds no JPEG or PNG frames (expected 00000.jpg, 00001.jpg, ...)"
            return None, [self.problem(name, issue, SKIPPED)]
        pngs = _annotation_pngs(mask_dir)
        if not pngs:
            issue = "its annotation folder holds no PNG masks (expected 00000.png, ...)"
            return None, [self.problem(name, issue, SKIPPED)]
        index_of = {_frame_key(path.stem): i for i, path in enumerate(frames)}
        problems = []
        orphans = [png.name for png in pngs if _frame_key(png.stem) not in index_of]
        if orphans:
            issue = "annotation PNGs without a frame of the same name"
            problems.append(self.problem(name, issue, "those masks left out", _some(orphans)))
        pairs = sorted((index_of[_frame_key(p.stem)], p) for p in pngs if _frame_key(p.stem) in index_of)
        checks = {index: _check_pair(frames[index], png) for index, png in pairs}
        good = [index for index, check in checks.items() if check.issue is None]
        visible = tuple(checks[index].objects for index in good)
        if not good:  # every annotated frame is bad: said once per kind, with the video skipped
            return None, problems + self._frame_problems(name, checks, SKIPPED)
        problems += self._frame_problems(name, checks, LEFT_OUT)
        if not any(visible):
            issue = "no object on any annotation PNG (every pixel is 0 or 255)"
            return None, problems + [self.problem(name, issue, SKIPPED, f"{len(good)} PNGs")]
        masks = dict(pairs)
        self._files[name] = _VideoFiles({i: frames[i].name for i in good}, {i: masks[i].name for i in good})
        return VideoItem(name, tuple(good), visible), problems

    def _frame_problems(self, name: str, checks: dict[int, FrameCheck], outcome: str) -> list[Problem]:
        """One problem per kind of bad annotated frame of a video, with the count and the first few."""
        by_issue: dict[str, list[str]] = {}
        for check in checks.values():
            if check.issue is not None:
                by_issue.setdefault(check.issue, []).append(check.detail)
        return [
            self.problem(name, issue, outcome, f"{len(details)} of {len(checks)}: {_some(details)}")
            for issue, details in by_issue.items()
        ]

    def reopen_video(self, name: str, frames: tuple[int, ...]) -> VideoItem:
        """The file names of these annotated frames, from the folder listings (nothing decoded)."""
        files = list_frame_files(self.frames_root / name)
        masks = {_frame_key(png.stem): png.name for png in _annotation_pngs(self.masks_root / name)}
        try:
            frame_names = {index: files[index].name for index in frames}
            mask_names = {index: masks[_frame_key(files[index].stem)] for index in frames}
        except (IndexError, KeyError):
            issue = "its frames or masks changed since the check"
            raise TrainingDataError(f"{self.name}: {name}: {issue}: check the data again") from None
        self._files[name] = _VideoFiles(frame_names, mask_names)
        return VideoItem(name, frames)

    # -- reading -------------------------------------------------------------------------------------------

    def read_frames(self, item: VideoItem, frames: Sequence[int]) -> dict[int, np.ndarray]:
        files = self._files_of(item)
        return {f: load_rgb(self.frames_root / item.name / files.frames[f]) for f in sorted(set(frames))}

    def read_masks(
        self, item: VideoItem, frame: int, objects: Sequence[int] | None = None
    ) -> dict[int, np.ndarray]:
        labels = load_labels(self.masks_root / item.name / self._files_of(item).masks[frame])
        masks = {}
        for obj in object_ids(labels) if objects is None else objects:
            mask = labels == obj
            if obj not in (0, IGNORE_LABEL) and mask.any():
                masks[int(obj)] = mask
        return masks

    def _files_of(self, item: VideoItem) -> _VideoFiles:
        try:
            return self._files[item.name]
        except KeyError:
            message = f"{self.name}: video {item.name} was not checked: run the check first"
            raise TrainingDataError(message) from None


def _check_pair(frame: Path, png: Path) -> FrameCheck:
    """Check an annotated frame: both images readable, the PNG a label image of the frame's size."""
    frame_size, problem = check_image(frame)
    if problem is not None:
        return FrameCheck(issue="frame images cannot be read", detail=f"{frame.name}: {problem}")
    return check_label_png(png, frame_size)


def _annotation_pngs(mask_dir: Path) -> list[Path]:
    """A video's annotation PNGs, by name (hidden files left out)."""
    return [p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() == ".png" and p.name[0] != "."]


def _subfolders(folder: Path) -> set[str]:
    return {entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")}


def _frame_key(stem: str) -> int | str:
    return int(stem) if stem.isdigit() else stem


def _some(names: list[str], count: int = 3) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > count else ""
    return ", ".join(names[:count]) + more
