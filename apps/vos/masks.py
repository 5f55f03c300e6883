"""Reading and writing the mask layouts of video object segmentation datasets (DAVIS, SA-V, MOSE, ...).

Two layouts, as the official tools use them:

* **palette** (DAVIS, MOSE, YouTube-VOS): ``<root>/<video>/<frame>.png``, one indexed ("P" mode) PNG per
  annotated frame whose pixel values are object ids (0 is background);
* **per-object** (SA-V): ``<root>/<video>/<object id, e.g. 001>/<frame>.png``, one PNG per object and frame,
  any non-zero pixel being the object.

Frames are named after the video's JPEG files (``00000.jpg`` -> ``00000.png``). Every problem is a
`VOSInputError` whose message names the file or folder, so one bad video can be reported and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model.images import label_png
from model.images.label_png import LabelPngError, Palette
from sam2_ui.engine.colors import davis_palette_flat

JPEG_SUFFIXES = (".jpg", ".jpeg")

ObjectMasks = dict[int, np.ndarray]  # object id -> H, W bool


class VOSInputError(Exception):
    """A dataset file or folder that cannot be used; the message names it and says what is wrong."""


def default_palette() -> Palette:
    """The DAVIS 2017 palette (what the official tools write when the input has none)."""
    return list(davis_palette_flat())


def natural_key(name: str) -> list[tuple[int, Any]]:
    """Orders digit runs by value ("2" before "10"), as numbered frame files need."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part]


def frame_files(video_dir: Path) -> list[Path]:
    """A video folder's JPEG frames (``.jpg``/``.jpeg``, any case), in frame order (numbered names by value).

    Hidden files (``._00001.jpg`` from macOS) are ignored. Raises `VOSInputError` if the folder is missing
    or holds no JPEG frame.
    """
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise VOSInputError(f"video folder {video_dir} does not exist")
    files = [
        p
        for p in video_dir.iterdir()
        if p.suffix.lower() in JPEG_SUFFIXES and not is_hidden(p) and p.is_file()
    ]
    if not files:
        raise VOSInputError(f"video folder {video_dir} holds no JPEG frames (*.jpg, *.jpeg)")
    return sorted(files, key=lambda p: natural_key(p.stem))


def video_folders(root: Path) -> list[str]:
    """The names of a dataset root's video folders (hidden ones, such as ``.partial``, left out), sorted."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not is_hidden(p))


def read_label_png(path: Path) -> tuple[np.ndarray, Palette | None]:
    """An annotation PNG as ``H, W`` uint8 labels and its palette (None for a non-palette PNG).

    A palette PNG's pixel values are its indices; a grey-level PNG gives its values (per-object masks are
    often stored that way); an RGB PNG is refused, since its colours are not object ids. Read by
    `model.images.label_png`, the reader the training data shares.
    """
    try:
        return label_png.read_label_png(path)
    except LabelPngError as error:
        raise VOSInputError(str(error)) from error.__cause__


def write_label_png(path: Path, labels: np.ndarray, palette: Palette | None) -> None:
    """Write ``H, W`` uint8 labels as a palette PNG (the DAVIS palette if ``palette`` is None)."""
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"labels must be H, W uint8, got {labels.shape} {labels.dtype}")
    image = Image.fromarray(labels, mode="L")
    image.putpalette(palette if palette is not None else default_palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def labels_to_objects(labels: np.ndarray) -> ObjectMasks:
    """Split ``H, W`` labels into one bool mask per object id present (background 0 excluded)."""
    ids = np.unique(labels)
    return {int(i): labels == i for i in ids if i != 0}


def objects_to_labels(masks: Mapping[int, np.ndarray], height: int, width: int) -> np.ndarray:
    """Pack per-object masks into ``H, W`` uint8 labels; where masks overlap the smallest id wins."""
    labels = np.zeros((height, width), np.uint8)
    for obj_id in sorted(masks, reverse=True):
        if not 0 < obj_id < 256:
            raise ValueError(f"object id {obj_id} does not fit a palette PNG (1..255)")
        labels[np.asarray(masks[obj_id]).reshape(height, width).astype(bool)] = obj_id
    return labels


def object_folders(video_mask_dir: Path) -> dict[int, Path]:
    """The per-object folders of one video (layout ``<video>/<object id>/<frame>.png``), by object id.

    Hidden entries are ignored; a folder whose name is not a number is an error.
    """
    video_mask_dir = Path(video_mask_dir)
    if not video_mask_dir.is_dir():
        raise VOSInputError(f"mask folder {video_mask_dir} does not exist")
    folders = {}
    for entry in sorted(video_mask_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if not entry.name.isdigit():
            raise VOSInputError(
                f"{entry} is not an object folder: per-object masks go in folders named by object id "
                "(001, 002, ...)"
            )
        folders[int(entry.name)] = entry
    return folders


def object_folder_name(obj_id: int) -> str:
    """The per-object folder name the official tools write: the id on three digits."""
    return f"{obj_id:03d}"


def read_frame_objects(
    video_mask_dir: Path,
    frame: str,
    per_object: bool,
    allow_missing: bool = False,
    frame_size: tuple[int, int] | None = None,
) -> tuple[ObjectMasks, Palette | None]:
    """The objects annotated on one frame, and the palette of the file(s) read.

    ``per_object``: read ``<object>/<frame>.png`` of every object folder; else ``<frame>.png``.
    ``allow_missing``: a missing file means "not annotated on this frame" (no objects, or not that object)
    instead of an error.
    ``frame_size``: ``(width, height)`` of the video's frames; a mask of another size is an error naming
    both sizes.
    """
    video_mask_dir = Path(video_mask_dir)
    if not per_object:
        path = video_mask_dir / f"{frame}.png"
        if allow_missing and not path.exists():
            return {}, None
        labels, palette = read_label_png(path)
        _check_size(labels, path, frame_size)
        return labels_to_objects(labels), palette
    objects: ObjectMasks = {}
    palette = None
    for obj_id, folder in object_folders(video_mask_dir).items():
        path = folder / f"{frame}.png"
        if not path.exists():
            if allow_missing:
                continue
            raise VOSInputError(f"object {obj_id} has no mask for frame {frame}: {path} does not exist")
        labels, file_palette = read_label_png(path)
        _check_size(labels, path, frame_size)
        objects[obj_id] = labels > 0
        palette = file_palette if file_palette is not None else palette
    return objects, palette


def _check_size(labels: np.ndarray, path: Path, frame_size: tuple[int, int] | None) -> None:
    if frame_size is None:
        return
    height, width = labels.shape
    if (width, height) != tuple(frame_size):
        raise VOSInputError(
            f"mask {path} is {width}x{height} but the video's frames are {frame_size[0]}x{frame_size[1]} "
            "(WxH); a mask must have the size of its frame"
        )


class MaskWriter:
    """Writes one video's output PNGs into ``out_dir``: ``<frame>.png`` labels, or (``per_object``)
    ``<object id>/<frame>.png`` 0/1 masks, all with ``palette`` (the DAVIS one if None), frames named by
    their index in ``names``."""

    def __init__(
        self,
        out_dir: Path,
        names: list[str],
        per_object: bool,
        palette: Palette | None,
        height: int,
        width: int,
    ) -> None:
        self.out_dir = out_dir
        self.names = names
        self.per_object = per_object
        self.palette = palette or default_palette()
        self.height, self.width = height, width
        out_dir.mkdir(parents=True, exist_ok=True)

    def write(self, frame_idx: int, masks: dict[int, np.ndarray]) -> None:
        """Write a frame's masks (object id -> H, W bool); in the palette layout the smallest id wins."""
        name = self.names[frame_idx]
        if not self.per_object:
            self.write_labels(frame_idx, objects_to_labels(masks, self.height, self.width))
            return
        for obj_id, mask in masks.items():
            labels = np.asarray(mask).reshape(self.height, self.width).astype(np.uint8)
            write_label_png(self.out_dir / object_folder_name(obj_id) / f"{name}.png", labels, self.palette)

    def write_labels(self, frame_idx: int, labels: np.ndarray) -> None:
        """Write a frame's ``H, W`` uint8 labels (palette layout)."""
        write_label_png(self.out_dir / f"{self.names[frame_idx]}.png", labels, self.palette)


def is_hidden(path: Path) -> bool:
    """Whether a file or folder name starts with a dot (ignored: ``.DS_Store``, ``.partial``, ...)."""
    return Path(path).name.startswith(".")
