"""Reading and checking image files for the training readers: RGB frames and label PNGs (Pillow).

Errors come out as `TrainingDataError` naming the file, or as a problem in words for the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.training.data.report import TrainingDataError

LABEL_MODES = ("P", "L", "I", "I;16")  # images whose pixel values are object ids
IGNORE_LABEL = 255  # DAVIS's "void" label: background for training
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


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
    except IMAGE_ERRORS as error:
        return (0, 0), f"not a readable image ({error})"
    return size, None


def load_rgb(path: Path) -> np.ndarray:
    """H, W, 3 uint8 RGB pixels of an image file; `TrainingDataError` naming the file if it cannot be read."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except IMAGE_ERRORS as error:
        raise TrainingDataError(f"cannot read the image {path}: {error}") from error


def load_labels(path: Path) -> np.ndarray:
    """H, W object ids of a label PNG (palette indices or grey levels); `TrainingDataError` if unreadable or
    not a label image (an RGB PNG has colours, not ids)."""
    try:
        with Image.open(path) as image:
            if image.mode not in LABEL_MODES:
                raise TrainingDataError(
                    f"{path} is not a label image: its mode is {image.mode}, expected a palette ('P') or "
                    "grey ('L') PNG whose pixel values are object ids"
                )
            return np.asarray(image)
    except IMAGE_ERRORS as error:
        raise TrainingDataError(f"cannot read the mask {path}: {error}") from error


def check_label_png(path: Path, frame_size: tuple[int, int]) -> FrameCheck:
    """Check an annotation PNG against its frame's (width, height); the objects on it when it is fine."""
    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
            if mode in LABEL_MODES:
                labels = np.asarray(image)
    except IMAGE_ERRORS as error:
        return FrameCheck(issue="annotation PNGs cannot be read", detail=f"{path.name}: {error}")
    if mode not in LABEL_MODES:
        issue = "annotation PNGs are colour images, not label images (palette or grey PNGs of object ids)"
        return FrameCheck(issue=issue, detail=f"{path.name} is {mode}")
    if size != frame_size:
        detail = f"{path.name} is {size[0]}x{size[1]}, its frame {frame_size[0]}x{frame_size[1]}"
        return FrameCheck(issue="annotation PNGs differ in size from their frames", detail=detail)
    return FrameCheck(object_ids(labels))


def object_ids(labels: np.ndarray) -> tuple[int, ...]:
    """The object ids present in a label image, increasing (0 and the ignore label 255 are background)."""
    if labels.dtype == np.uint8:
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    else:
        present = np.unique(labels)
    return tuple(int(v) for v in present if v not in (0, IGNORE_LABEL))
