"""Images with COCO instance masks: one COCO JSON (``images``, ``annotations`` with ``image_id`` and a
``segmentation`` RLE, compressed or not, or polygons) and the folder of its images.

Each image is a video of one frame (index 0); its objects are its annotations, by annotation ``id``. Crowd
annotations (``iscrowd: 1``) mark a region of many instances, not one object: they are left out unless
``include_crowd``. Annotations of zero area are left out, as the official SA-1B reader does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.training.data.images import check_image, load_rgb
from model.training.data.report import Problem, TrainingDataError
from model.training.data.segmentation import decode_segmentation, usable_annotations
from model.training.data.source import Source, VideoItem

SKIPPED = "image skipped"


@dataclass(frozen=True)
class _Image:
    """An image of the JSON: its file (relative to the image folder), size, and annotations by object id."""

    file: str
    width: int
    height: int
    annotations: dict[int, Any]


class CocoSource(Source):
    """Images and their instance masks from a COCO JSON.

    Arguments:
        annotation_file: the JSON (e.g. ``annotations/instances_train2017.json``).
        image_root: the folder its ``file_name``s are relative to; None: found next to the JSON (its folder,
            ``../train2017`` for ``instances_train2017.json``, or an ``images`` folder).
        document: the JSON, already loaded (`open_source` reads it once to recognise the layout).
        include_crowd: keep crowd annotations as objects.
    """

    layout = "COCO JSON + images"
    images = True

    def __init__(
        self,
        annotation_file: str | Path,
        image_root: str | Path | None = None,
        *,
        document: dict[str, Any] | None = None,
        include_crowd: bool = False,
    ) -> None:
        self.annotation_file = Path(annotation_file)
        super().__init__(str(self.annotation_file))
        self.image_root = None if image_root is None else Path(image_root)
        self.include_crowd = include_crowd
        self._document = document
        self._images: dict[str, _Image] = {}

    # -- the check -----------------------------------------------------------------------------------------

    def video_names(self) -> tuple[list[str], list[Problem]]:
        try:
            document = self._document or json.loads(self.annotation_file.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            return [], [self.problem("", "cannot be read as JSON", "nothing to train on here", str(error))]
        self._document = None  # the index below is all that is kept
        if not isinstance(document, dict) or not isinstance(document.get("images"), list):
            return [], [self.problem("", 'not a COCO JSON (no "images" list)', "nothing to train on here")]
        if not isinstance(document.get("annotations"), list):
            return [], [
                self.problem("", 'not a COCO JSON (no "annotations" list)', "nothing to train on here")
            ]
        self._images, problems = self._index(document)
        if not self._images:
            return [], problems + [self.problem("", "no images listed", "nothing to train on here")]
        if self.image_root is None:
            self.image_root = _find_image_root(self.annotation_file, next(iter(self._images.values())).file)
        if self.image_root is None:
            issue = "its images are not in the JSON's folder, ../<split>/ or images/"
            return [], problems + [self.problem("", issue, "nothing to train on here: give the image folder")]
        return list(self._images), problems

    def _index(self, document: dict[str, Any]) -> tuple[dict[str, _Image], list[Problem]]:
        """Images by file name with their annotations by object id, and the entries that are not usable."""
        by_image: dict[Any, dict[int, Any]] = {}
        for index, annotation in enumerate(document["annotations"]):
            if not isinstance(annotation, dict) or (annotation.get("iscrowd") and not self.include_crowd):
                continue
            object_id = annotation.get("id", index)
            object_id = object_id if isinstance(object_id, int) else index
            by_image.setdefault(annotation.get("image_id"), {})[object_id] = annotation
        images, problems = {}, []
        for place, entry in enumerate(document["images"]):
            try:
                file, width, height = str(entry["file_name"]), int(entry["width"]), int(entry["height"])
            except (KeyError, TypeError, ValueError):
                issue = "image entries without file_name, width and height"
                problems.append(self.problem(f"images[{place}]", issue, SKIPPED))
                continue
            images[file] = _Image(file, width, height, by_image.get(entry.get("id"), {}))
        return images, problems

    def check_video(self, name: str) -> tuple[VideoItem | None, list[Problem]]:
        image = self._images[name]
        size, problem = check_image(self.image_root / image.file)
        if problem is not None:
            return None, [self.problem(name, "the image cannot be read", SKIPPED, problem)]
        if size != (image.width, image.height):
            detail = f"the file is {size[0]}x{size[1]}, the JSON says {image.width}x{image.height}"
            return None, [self.problem(name, "the image's size differs from the JSON's", SKIPPED, detail)]
        usable, bad = _usable_objects(image)
        return self.image_item(name, usable, bad)

    def reopen_video(self, name: str, frames: tuple[int, ...]) -> VideoItem:
        """The image's entry of the JSON (read once, on the first image): its objects are found when asked."""
        if not self._images:
            _, problems = self.video_names()
            if not self._images or self.image_root is None:
                found = "; ".join(problem.line() for problem in problems)
                raise TrainingDataError(f"{self.name} cannot be read as the check found it: {found}")
        if name not in self._images:
            raise TrainingDataError(f"{self.name}: {name} is no longer in the JSON: check the data again")
        return VideoItem(name, frames)

    # -- reading -------------------------------------------------------------------------------------------

    def read_frames(self, item: VideoItem, frames: Sequence[int]) -> dict[int, np.ndarray]:
        rgb = load_rgb(self.image_root / self._images[item.name].file)
        return {frame: rgb for frame in set(frames)}

    def visible_objects(self, item: VideoItem, position: int) -> tuple[int, ...]:
        if item.visible is not None:
            return item.visible[position]
        return _usable_objects(self._images[item.name])[0]  # from the JSON, as the check found them

    def read_masks(
        self, item: VideoItem, frame: int, objects: Sequence[int] | None = None
    ) -> dict[int, np.ndarray]:
        image = self._images[item.name]
        masks = {}
        for obj in self.visible_objects(item, 0) if objects is None else objects:
            try:
                mask = decode_segmentation(image.annotations[obj]["segmentation"], image.height, image.width)
            except (KeyError, ValueError) as error:
                raise TrainingDataError(
                    f"{self.name}: {item.name}: the mask of object {obj}: {error}"
                ) from error
            if mask.any():
                masks[int(obj)] = mask
        return masks


def _usable_objects(image: _Image) -> tuple[tuple[int, ...], list[str]]:
    """The ids of an image's usable, non-empty annotations, and what is wrong with each bad one."""
    ids = list(image.annotations)
    usable, bad = usable_annotations(list(image.annotations.values()), image.height, image.width)
    return tuple(ids[i] for i in usable), bad


def _find_image_root(annotation_file: Path, first_file: str) -> Path | None:
    """The folder next to a COCO JSON that holds its first image: the JSON's own folder, the split folder
    (``../train2017`` for ``instances_train2017.json``) or an ``images`` folder."""
    folder = annotation_file.resolve().parent
    split = annotation_file.stem.rsplit("_", 1)[-1]
    for candidate in (
        folder,
        folder.parent / split,
        folder / split,
        folder / "images",
        folder.parent / "images",
    ):
        if (candidate / first_file).is_file():
            return candidate
    return None
