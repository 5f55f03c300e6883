"""SA-1B: a folder of ``<name>.jpg`` with ``<name>.json`` beside each (``image``: width, height;
``annotations``: one per mask, with a COCO RLE ``segmentation`` and its ``area``).

Each image is a video of one frame (index 0); an object's id is its place in ``annotations``. Masks of zero
area are left out, as the official ``SA1BRawDataset`` does. The check reads every JSON once and keeps only
which objects are usable; a clip reads its image's JSON again (SA-1B's JSONs are too large to keep all, so
only the last one read stays).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.training.data.images import check_image, load_rgb
from model.training.data.report import Problem, TrainingDataError
from model.training.data.segmentation import decode_segmentation, usable_annotations
from model.training.data.source import Source, VideoItem

SKIPPED = "image skipped"
NOT_SA1B = 'not an SA-1B annotation file (expected "annotations": a list of {"segmentation": RLE, "area"})'


class SA1BSource(Source):
    """Images of an SA-1B folder (``sa_1.jpg`` + ``sa_1.json``, ...).

    Arguments:
        folder: the folder holding the pairs.
        videos: the image names (stems) to use; None: every JPEG with a JSON beside it.
    """

    layout = "SA-1B (.jpg + .json per image)"
    images = True

    def __init__(self, folder: str | Path, *, videos: Sequence[str] | None = None) -> None:
        self.folder = Path(folder)
        super().__init__(str(self.folder))
        self.wanted = None if videos is None else list(videos)
        self._document: tuple[str, list[Any]] | None = None  # the last image's annotations

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_document": None}

    # -- the check -----------------------------------------------------------------------------------------

    def video_names(self) -> tuple[list[str], list[Problem]]:
        if not self.folder.is_dir():
            return [], [self.problem("", "the folder is missing", "nothing to train on here")]
        if self.wanted is not None:
            return self.wanted, []
        images = {p.stem for p in self.folder.glob("*.jpg") if not p.name.startswith(".")}
        annotated = {p.stem for p in self.folder.glob("*.json") if not p.name.startswith(".")}
        problems = [
            self.problem(f"{stem}.jpg", "an image without its JSON beside it", SKIPPED)
            for stem in sorted(images - annotated)
        ]
        names = sorted(images & annotated)
        if not names:
            issue = "no SA-1B images: no <name>.jpg with <name>.json beside it"
            return [], problems + [self.problem("", issue, "nothing to train on here")]
        return names, problems

    def check_video(self, name: str) -> tuple[VideoItem | None, list[Problem]]:
        size, problem = check_image(self.folder / f"{name}.jpg")
        if problem is not None:
            return None, [self.problem(name, "the image cannot be read", SKIPPED, problem)]
        try:
            annotations = self._annotations(name)
        except TrainingDataError as error:
            issue = NOT_SA1B if "not an SA-1B" in str(error) else "the JSON cannot be read"
            return None, [self.problem(name, issue, SKIPPED, str(error.__cause__ or ""))]
        usable, bad = usable_annotations(annotations, size[1], size[0])
        return self.image_item(name, usable, bad)

    def reopen_video(self, name: str, frames: tuple[int, ...]) -> VideoItem:
        """Nothing to read before a clip: an image's objects are found in its JSON when asked."""
        return VideoItem(name, frames)

    def _annotations(self, name: str) -> list[Any]:
        if self._document is not None and self._document[0] == name:
            return self._document[1]
        path = self.folder / f"{name}.json"
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as error:
            raise TrainingDataError(f"cannot read {path}: {error}") from error
        annotations = document.get("annotations") if isinstance(document, dict) else None
        if not isinstance(annotations, list):
            raise TrainingDataError(f"{path} is {NOT_SA1B}")
        self._document = (name, annotations)
        return annotations

    # -- reading -------------------------------------------------------------------------------------------

    def read_frames(self, item: VideoItem, frames: Sequence[int]) -> dict[int, np.ndarray]:
        rgb = load_rgb(self.folder / f"{item.name}.jpg")
        return {frame: rgb for frame in set(frames)}

    def visible_objects(self, item: VideoItem, position: int) -> tuple[int, ...]:
        if item.visible is not None:
            return item.visible[position]
        (width, height), problem = check_image(self.folder / f"{item.name}.jpg")
        if problem is not None:
            raise TrainingDataError(f"{self.name}: {item.name}.jpg: {problem}")
        return tuple(usable_annotations(self._annotations(item.name), height, width)[0])

    def read_masks(
        self, item: VideoItem, frame: int, objects: Sequence[int] | None = None
    ) -> dict[int, np.ndarray]:
        annotations = self._annotations(item.name)
        masks = {}
        for obj in self.visible_objects(item, 0) if objects is None else objects:
            try:
                segmentation = annotations[obj]["segmentation"]
                height, width = (int(s) for s in segmentation["size"])
                mask = decode_segmentation(segmentation, height, width)
            except (KeyError, IndexError, TypeError, ValueError) as error:
                raise TrainingDataError(
                    f"{self.name}: {item.name}: the mask of object {obj}: {error}"
                ) from error
            if mask.any():
                masks[int(obj)] = mask
        return masks
