"""Reading and checking image files for the training readers: RGB frames (by the inference's frame reader,
`ImageFilesSource`) and label PNGs (by `model.images.label_png`, the reader ``apps.vos`` uses too).

Errors come out as `TrainingDataError` naming the file, or as a problem in words for the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.errors import VideoSourceError
from model.images.label_png import READ_ERRORS, LabelPngError, read_label_png
from model.training.data.report import TrainingDataError
from model.video.video_frames import ImageFilesSource

IGNORE_LABEL = 255  # DAVIS's "void" label: background for training
NOT_LABELS = "annotation PNGs are colour images, not label images (palette or grey PNGs of object ids)"


@dataclass(frozen=True)
class FrameCheck:
    """The check of one annotated frame: the ids of the objects on it, or what is wrong (``issue``, worded
    the same for every frame with that problem) and this frame's specifics (``detail``)."""

    objects: tuple[int, ...] = ()
    issue: str | None = None
    detail: str = ""


def check_image(path: Path) -> tuple[tuple[int, int], str | None]:
    """(width, height) of an image from its header, and what is wrong with the file (None: looks fine).

    Reads the header and lets Pillow verify what it can without decoding the pixels.
    """
    try:
        with Image.open(path) as image:
            size = image.size
            image.verify()
    except FileNotFoundError:
        return (0, 0), "the file is missing"
    except READ_ERRORS as error:
        return (0, 0), f"not a readable image ({error})"
    return size, None


def load_rgb(path: Path) -> np.ndarray:
    """H, W, 3 uint8 RGB pixels of an image file (read-only); `TrainingDataError` naming the file if it cannot
    be read."""
    try:
        with ImageFilesSource([path], cache_size=0, name=str(path)) as image:
            return image.rgb(0)
    except VideoSourceError as error:
        raise TrainingDataError(f"cannot read the image {path}: {error.__cause__ or error}") from error
    except READ_ERRORS as error:  # what the frame reader lets through (a damaged PNG's SyntaxError)
        raise TrainingDataError(f"cannot read the image {path}: {error}") from error


def load_labels(path: Path) -> np.ndarray:
    """H, W uint8 object ids of a label PNG; `TrainingDataError` if unreadable or not a label image (an RGB
    PNG has colours, not ids)."""
    try:
        return read_label_png(path)[0]
    except LabelPngError as error:
        raise TrainingDataError(str(error)) from error


def check_label_png(path: Path, frame_size: tuple[int, int]) -> FrameCheck:
    """Check an annotation PNG against its frame's (width, height); the objects on it when it is fine."""
    try:
        labels = read_label_png(path)[0]
    except LabelPngError as error:
        if error.reason == "colour":
            return FrameCheck(issue=NOT_LABELS, detail=f"{path.name} is {error.mode}")
        if error.reason == "range":
            return FrameCheck(issue="annotation PNGs hold object ids above 255", detail=path.name)
        detail = f"{path.name}: {error.__cause__ or 'the file is missing'}"
        return FrameCheck(issue="annotation PNGs cannot be read", detail=detail)
    height, width = labels.shape
    if (width, height) != frame_size:
        detail = f"{path.name} is {width}x{height}, its frame {frame_size[0]}x{frame_size[1]}"
        return FrameCheck(issue="annotation PNGs differ in size from their frames", detail=detail)
    return FrameCheck(object_ids(labels))


def object_ids(labels: np.ndarray) -> tuple[int, ...]:
    """The object ids on a uint8 label image, increasing (0 and the ignore label 255 are background)."""
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    return tuple(int(v) for v in present if v not in (0, IGNORE_LABEL))
