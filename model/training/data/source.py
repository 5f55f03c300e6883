"""What every training data reader is: a `Source` lists its videos, checks them once before training, and
then reads frames and per-object masks of the annotated frames the sampler picks.

Each layout (DAVIS-style folders, SA-V, COCO, SA-1B, sam2-ui session files) is a subclass that answers four
questions: which videos are there (`video_names`), is this one usable and which of its frames are annotated
(`check_video`), what are these frames (`read_frames`), and which objects are on this frame
(`read_masks`). The check, the parallel scan and the reading of every frame (``decode_frames``) live here.

Frame indices are the video's own: the position of the frame in its folder (sorted as `open_frames` sorts
it) or in the decoded video file; an image is a video of one frame, index 0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from model.training.data.report import Problem, TrainingDataError

READ_CHUNK = 8  # frames decoded at once when the check reads every frame


@dataclass(frozen=True)
class VideoItem:
    """One usable video of a source, as the check found it.

    ``name``: the video's name in its source (a folder, a file stem, an image file name);
    ``frames``: its annotated frames, increasing frame indices (an image: ``(0,)``);
    ``visible``: for each annotated frame, the ids of the objects with a non-empty mask there, or None when
    the check did not decode the masks (the source then finds them when asked, see `Source.visible_objects`).
    """

    name: str
    frames: tuple[int, ...]
    visible: tuple[tuple[int, ...], ...] | None = None


class Source(ABC):
    """A set of annotated videos in one layout. ``items`` holds the usable ones once `check` has run (or
    `restore`, in a process that did not check)."""

    layout = "videos"  # the layout, in words, for reports
    images = False  # whether its items are still images (1-frame clips) rather than videos

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: list[VideoItem] = []
        self.checked = False
        self.skipped = 0  # items the check left out

    def __repr__(self) -> str:
        state = f"{len(self.items)} usable videos" if self.checked else "not checked"
        return f"{type(self).__name__}({self.name!r}, {state})"

    def __len__(self) -> int:
        return len(self.items)

    # -- what a layout answers ---------------------------------------------------------------------------

    @abstractmethod
    def video_names(self) -> tuple[list[str], list[Problem]]:
        """The names of the candidate videos, and problems of the source as a whole (none found, ...)."""

    @abstractmethod
    def check_video(self, name: str) -> tuple[VideoItem | None, list[Problem]]:
        """Check one video: everything the sampler will read (files there, readable, sizes agreeing).

        Returns its `VideoItem` (None when nothing of it is usable) and the problems found. Records what
        reading needs later (file names, sizes) on the source. Never raises for bad data.
        """

    @abstractmethod
    def read_frames(self, item: VideoItem, frames: Sequence[int]) -> dict[int, np.ndarray]:
        """The frames at these indices: frame index -> H, W, 3 uint8 RGB (`TrainingDataError`: unreadable)."""

    @abstractmethod
    def read_masks(
        self, item: VideoItem, frame: int, objects: Sequence[int] | None = None
    ) -> dict[int, np.ndarray]:
        """The objects annotated on an annotated frame: object id -> H, W bool (the frame's size).

        ``objects``: only these (None: all). An object not in the result is absent from the frame.
        `TrainingDataError` if the annotation cannot be read.
        """

    # -- shared ------------------------------------------------------------------------------------------

    def problem(self, where: str, issue: str, outcome: str, detail: str = "") -> Problem:
        return Problem(self.name, where, issue, outcome, detail)

    def image_item(
        self, name: str, usable: Sequence[int], bad: Sequence[str]
    ) -> tuple[VideoItem | None, list[Problem]]:
        """An image with its usable objects as a 1-frame item, with a line for the masks left out (``bad``:
        what is wrong with each) and the image skipped when no object is left."""
        problems = []
        if bad:
            details = f"{len(bad)}: {'; '.join(bad[:2])}"
            problems.append(
                self.problem(name, "masks that do not fit the image", "those masks left out", details)
            )
        if not usable:
            return None, problems + [self.problem(name, "no annotated object", "image skipped")]
        return VideoItem(name, (0,), (tuple(usable),)), problems

    def visible_objects(self, item: VideoItem, position: int) -> tuple[int, ...]:
        """Ids of the objects with a non-empty mask on the ``position``-th annotated frame of ``item``."""
        if item.visible is not None:
            return item.visible[position]
        masks = self.read_masks(item, item.frames[position])
        return tuple(sorted(obj for obj, mask in masks.items() if mask.any()))

    def check(self, workers: int = 1, decode_frames: bool = False) -> list[Problem]:
        """Check every video, keep the usable ones in ``items`` and return the problems found.

        ``workers``: threads checking videos at once (image decoding releases the GIL);
        ``decode_frames``: also decode every annotated frame (slow; by default only image headers are read).
        """
        try:
            names, problems = self.video_names()
        except OSError as error:
            names, problems = [], [self.problem("", "cannot be read", "source skipped", str(error))]
        if workers > 1 and len(names) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(self._check_one, names))
        else:
            results = [self._check_one(name) for name in names]
        items = []
        for item, found in results:
            problems.extend(found)
            if item is not None and decode_frames:
                item = self._decode_all(item, problems)
            if item is not None:
                items.append(item)
        self.items = items
        self.skipped = len(names) - len(items)
        self.checked = True
        return problems

    def usable(self) -> list[tuple[str, tuple[int, ...]]]:
        """What another process needs to use this checked source (see `restore`): the name and annotated
        frames of each usable video."""
        return [(item.name, item.frames) for item in self.items]

    def restore(self, usable: Sequence[tuple[str, Sequence[int]]], skipped: int = 0) -> None:
        """Use the check another process made of the same data (its `usable`) without checking again.

        Only what reading needs is built (file lists, a COCO JSON's index), so a data set is checked once per
        run, not once per process. `TrainingDataError` when the data changed since the check.
        """
        items = []
        for name, frames in usable:
            try:
                items.append(self.reopen_video(name, tuple(int(frame) for frame in frames)))
            except TrainingDataError:
                raise
            except (OSError, ValueError, KeyError, TypeError) as error:
                issue = f"cannot be read as the check found it ({error})"
                raise TrainingDataError(f"{self.name}: {name} {issue}: check the data again") from error
        self.items = items
        self.skipped = skipped
        self.checked = True

    def reopen_video(self, name: str, frames: tuple[int, ...]) -> VideoItem:
        """A video another process found usable, with these annotated frames, ready to read.

        By default it is checked again (what a source of one video, a session file, can afford); layouts with
        many videos build only what reading needs.
        """
        item, _ = self.check_video(name)
        if item is None or item.frames != frames:
            raise TrainingDataError(f"{self.name}: {name} changed since the check: check the data again")
        return item

    def _check_one(self, name: str) -> tuple[VideoItem | None, list[Problem]]:
        try:
            return self.check_video(name)
        except (OSError, ValueError, KeyError, TypeError) as error:  # a reader missed a case: still skip it
            detail = f"{type(error).__name__}: {error}"
            return None, [self.problem(name, "cannot be read", "video skipped", detail)]

    def _decode_all(self, item: VideoItem, problems: list[Problem]) -> VideoItem | None:
        for start in range(0, len(item.frames), READ_CHUNK):
            try:
                self.read_frames(item, item.frames[start : start + READ_CHUNK])
            except TrainingDataError as error:
                issue = "a frame cannot be decoded"
                problems.append(self.problem(item.name, issue, "video skipped", str(error)))
                return None
        return item
