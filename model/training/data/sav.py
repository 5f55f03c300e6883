"""SA-V: a folder (searched with its subfolders, as the ``sav_000/ sav_001/ ...`` download) of
``<video>.mp4`` with ``<video>_manual.json`` beside each.

The JSON's ``masklet`` is a list over the annotated frames, every 4th frame of the video (SA-V annotates at
6 fps videos of 24 fps), each a list with one COCO RLE per object (``masklet_num`` objects); an object's id
is its place in that list, as in the official ``JSONSegmentLoader``. An annotated frame with no mask for
some object (``null``) is left out, as the official ``JSONRawDataset`` does with ``rm_unannotated``.

Frames are decoded from the mp4 with PyAV (`VideoFileSource`), only those a clip needs, in increasing order
so the decoder only moves forward; there is no frame extraction step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import VideoSourceError
from model.training.data.report import Problem, TrainingDataError
from model.training.data.segmentation import decode_segmentation, rle_is_empty, segmentation_problem
from model.training.data.source import Source, VideoItem
from model.video.video_file import VideoFileSource

SKIPPED = "video skipped"
NOT_SAV = (
    'not an SA-V annotation file (expected a "masklet" list over the annotated frames, each a list of '
    "RLE masks, one per object)"
)


@dataclass(frozen=True)
class _Frames:
    """The annotated frames of a video and the problems of the others: frame index -> its masklet entry."""

    entries: dict[int, int]
    problems: dict[str, list[str]]


class SAVSource(Source):
    """SA-V videos: ``<video>.mp4`` + ``<video>_manual.json`` (masks every ``annotation_every`` frames).

    Arguments:
        folder: searched with its subfolders for ``*_manual.json`` files.
        videos: the video names to use (e.g. ``sav_000001``); None: all.
        annotation_every: video frames per annotated frame (4 for SA-V: 6 fps masks on 24 fps videos).
        suffix: the annotation file's ending (``"_auto.json"`` reads the automatic masklets).
    """

    layout = "SA-V (.mp4 + _manual.json)"

    def __init__(
        self,
        folder: str | Path,
        *,
        videos: Sequence[str] | None = None,
        annotation_every: int = 4,
        suffix: str = "_manual.json",
    ) -> None:
        if annotation_every < 1:
            raise ValueError(f"annotation_every must be at least 1, got {annotation_every}")
        self.folder = Path(folder)
        super().__init__(str(self.folder))
        self.wanted = None if videos is None else set(videos)
        self.annotation_every = annotation_every
        self.suffix = suffix
        self._entries: dict[str, dict[int, int]] = {}  # video -> annotated frame -> masklet entry
        self._document: tuple[str, list[Any]] | None = None  # the last masklet read (a clip reads it often)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_document": None}  # a worker process reads its own

    # -- the check -----------------------------------------------------------------------------------------

    def video_names(self) -> tuple[list[str], list[Problem]]:
        if not self.folder.is_dir():
            return [], [self.problem("", "the folder is missing", "nothing to train on here")]
        names = sorted(
            path.relative_to(self.folder).as_posix()[: -len(self.suffix)]
            for path in self.folder.rglob(f"*{self.suffix}")
        )
        if self.wanted is not None:
            names = [name for name in names if name in self.wanted or Path(name).name in self.wanted]
        if not names:
            issue = f"no SA-V videos: no <video>{self.suffix} files beside <video>.mp4 files"
            return [], [self.problem("", issue, "nothing to train on here")]
        return names, []

    def check_video(self, name: str) -> tuple[VideoItem | None, list[Problem]]:
        video_path = self.folder / f"{name}.mp4"
        if not video_path.is_file():
            issue = f"no video file {Path(name).name}.mp4 beside its annotation file"
            return None, [self.problem(name, issue, SKIPPED)]
        try:
            masklet = _masklet(json.loads((self.folder / f"{name}{self.suffix}").read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            issue = "the annotation file cannot be read as JSON"
            return None, [self.problem(name, issue, SKIPPED, str(error))]
        if masklet is None:
            return None, [self.problem(name, NOT_SAV, SKIPPED, f"{Path(name).name}{self.suffix}")]
        if not masklet or not isinstance(masklet[0], list) or not masklet[0]:
            return None, [self.problem(name, "no annotated object (an empty masklet)", SKIPPED)]
        try:
            with VideoFileSource(video_path, cache_size=1) as video:
                count, size = len(video), (video.height, video.width)
        except VideoSourceError as error:
            return None, [self.problem(name, "the video file cannot be decoded", SKIPPED, str(error))]
        frames = self._annotated(masklet, count, size)
        outcome = "those frames left out" if frames.entries else SKIPPED
        problems = [
            self.problem(name, issue, outcome, f"{len(details)}: {', '.join(details[:3])}")
            for issue, details in frames.problems.items()
        ]
        if not frames.entries:  # said once per kind of bad frame, or once for a video of unannotated frames
            return None, problems or [self.problem(name, "no frame annotated for every object", SKIPPED)]
        self._entries[name] = frames.entries
        return VideoItem(name, tuple(frames.entries)), problems

    def _annotated(self, masklet: list[Any], count: int, size: tuple[int, int]) -> _Frames:
        """Which masklet entries are usable annotated frames of a video of ``count`` frames of ``size``."""
        objects = len(masklet[0])
        entries, problems = {}, {}
        for index, masks in enumerate(masklet):
            frame = index * self.annotation_every
            issue, detail = None, ""
            if frame >= count:
                issue, detail = "annotations past the end of the video", f"frame {frame} of {count}"
            elif not isinstance(masks, list) or len(masks) != objects:
                issue = "annotated frames without one mask per object"
                detail = f"frame {frame}"
            elif any(mask is None for mask in masks):
                continue  # not annotated for every object: left out, as the official reader does
            else:
                found = next((p for m in masks if (p := segmentation_problem(m, *size)) is not None), None)
                if found is not None:
                    issue, detail = "masks that do not fit the video", f"frame {frame}: {found}"
            if issue is None:
                entries[frame] = index
            else:
                problems.setdefault(issue, []).append(detail)
        return _Frames(entries, problems)

    def reopen_video(self, name: str, frames: tuple[int, ...]) -> VideoItem:
        """Annotated frame ``f`` is the masklet's entry ``f / annotation_every``: nothing to read."""
        self._entries[name] = {frame: frame // self.annotation_every for frame in frames}
        return VideoItem(name, frames)

    # -- reading -------------------------------------------------------------------------------------------

    def read_frames(self, item: VideoItem, frames: Sequence[int]) -> dict[int, np.ndarray]:
        path = self.folder / f"{item.name}.mp4"
        try:
            with VideoFileSource(path, cache_size=1) as video:
                return {f: np.array(video.rgb(f)) for f in sorted(set(frames))}
        except (VideoSourceError, IndexError) as error:
            raise TrainingDataError(f"cannot read frames {sorted(set(frames))} of {path}: {error}") from error

    def read_masks(
        self, item: VideoItem, frame: int, objects: Sequence[int] | None = None
    ) -> dict[int, np.ndarray]:
        masks = self._frame_masks(item, frame)
        wanted = range(len(masks)) if objects is None else objects
        result = {}
        for obj in wanted:
            height, width = (int(s) for s in masks[obj]["size"])
            try:
                mask = decode_segmentation(masks[obj], height, width)
            except ValueError as error:
                where = f"{item.name}: the mask of object {obj} on frame {frame}"
                raise TrainingDataError(f"{where}: {error}") from error
            if mask.any():
                result[int(obj)] = mask
        return result

    def visible_objects(self, item: VideoItem, position: int) -> tuple[int, ...]:
        masks = self._frame_masks(item, item.frames[position])
        return tuple(obj for obj, rle in enumerate(masks) if not rle_is_empty(rle))

    def _frame_masks(self, item: VideoItem, frame: int) -> list[dict[str, Any]]:
        """The RLE masks of every object on an annotated frame (the masklet read once per video)."""
        if self._document is None or self._document[0] != item.name:
            path = self.folder / f"{item.name}{self.suffix}"
            try:
                masklet = _masklet(json.loads(path.read_text()))
            except (OSError, ValueError) as error:
                raise TrainingDataError(f"cannot read {path}: {error}") from error
            if masklet is None:
                raise TrainingDataError(f"{path} is {NOT_SAV}")
            self._document = (item.name, masklet)
        try:
            return self._document[1][self._entries[item.name][frame]]
        except (KeyError, IndexError):
            raise TrainingDataError(f"{item.name}: frame {frame} is not an annotated frame") from None


def _masklet(document: Any) -> list[Any] | None:
    """The per-frame mask lists of an SA-V annotation document (None: not one)."""
    if not isinstance(document, dict):
        return None
    masklet = document.get("masklet", document.get("masks"))
    return masklet if isinstance(masklet, list) else None
