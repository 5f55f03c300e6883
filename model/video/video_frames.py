"""Opening video frames: `open_frames` turns whatever the user gives (a folder of images, a video file, an
array or a list of frames, one image) into a lazily decoded `FrameSource` (see `frame_source`).

Video files are read by `video_file.VideoFileSource` (PyAV): the official ``init_state`` accepts a video path,
so the model layer reads video files too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model.errors import VideoSourceError
from model.video.frame_source import IMAGE_SUFFIXES, VIDEO_SUFFIXES, FrameSource
from model.video.video_file import VideoFileSource


class ImageFilesSource(FrameSource):
    """Frames stored one per image file, in the given order."""

    def __init__(self, paths: Sequence[Path], *, cache_size: int = 8, name: str | None = None) -> None:
        if not paths:
            raise VideoSourceError(f"no image files given for {name or 'the video'}")
        sizes = {path: _image_size(path) for path in paths}
        first = paths[0]
        width, height = sizes[first]
        for path, size in sizes.items():
            if size != (width, height):
                raise VideoSourceError(
                    f"frames in {name or first.parent} differ in size: {first.name} is {width}x{height} but "
                    f"{path.name} is {size[0]}x{size[1]} (WxH); all frames of a video must have one size"
                )
        super().__init__(len(paths), height, width, cache_size=cache_size, name=name or str(first))
        self.paths = list(paths)

    def _read(self, index: int) -> np.ndarray:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        except (OSError, ValueError) as error:
            raise VideoSourceError(f"cannot decode frame {index} of {self.name}: {path}: {error}") from error


class ArraySource(FrameSource):
    """Frames given in memory: a T, H, W, 3 uint8 array, or a list of H, W, 3 uint8 arrays or PIL images.

    The caller's frames are not copied; PIL images are converted to RGB when read.
    """

    def __init__(self, frames: np.ndarray | Sequence[Any], *, cache_size: int = 8) -> None:
        if isinstance(frames, np.ndarray):
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise VideoSourceError(
                    "a video array must be T, H, W, 3 uint8 RGB; "
                    f"got shape {frames.shape} dtype {frames.dtype}"
                )
            if frames.shape[0] == 0:
                raise VideoSourceError("the video array has no frames (shape[0] == 0)")
            height, width = frames.shape[1:3]
        else:
            if len(frames) == 0:
                raise VideoSourceError("the list of frames is empty")
            sizes = [_in_memory_frame_size(frame, i) for i, frame in enumerate(frames)]
            width, height = sizes[0]
            for i, size in enumerate(sizes):
                if size != (width, height):
                    raise VideoSourceError(
                        f"frames differ in size: frame 0 is {width}x{height} but frame {i} is "
                        f"{size[0]}x{size[1]} (WxH); all frames of a video must have one size"
                    )
        kind = "array" if isinstance(frames, np.ndarray) else "list"
        super().__init__(
            len(frames),
            int(height),
            int(width),
            cache_size=cache_size,
            name=f"{kind} of {len(frames)} frames",
        )
        self._source = frames

    def _read(self, index: int) -> np.ndarray:
        frame = self._source[index]
        if isinstance(frame, Image.Image):
            return np.asarray(frame.convert("RGB"))
        return frame


def _in_memory_frame_size(frame: Any, index: int) -> tuple[int, int]:
    """(width, height) of one in-memory frame, or VideoSourceError naming what was wrong with it."""
    if isinstance(frame, Image.Image):
        return frame.size
    if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] == 3 and frame.dtype == np.uint8:
        return frame.shape[1], frame.shape[0]
    got = (
        f"shape {frame.shape} dtype {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
    )
    raise VideoSourceError(f"frame {index} must be an H, W, 3 uint8 RGB array or a PIL image; got {got}")


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError) as error:
        raise VideoSourceError(f"cannot read image {path}: {error}") from error


def _natural_key(name: str) -> list[tuple[int, Any]]:
    """Sort key that orders digit runs by value, so "frame2" comes before "frame10"."""
    return [
        (0, int(part)) if part.isdigit() else (1, part.lower()) for part in re.split(r"(\d+)", name) if part
    ]


def list_frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in video order.

    Integer stems ("00000.jpg", as the official tools name frames) sort by their value, as the official loader
    sorts them; other names sort naturally. Hidden files (".DS_Store", "._00001.jpg") are ignored.
    """
    names = [
        entry.name
        for entry in os.scandir(folder)
        if entry.is_file() and not entry.name.startswith(".") and entry.name.lower().endswith(IMAGE_SUFFIXES)
    ]
    stems = [os.path.splitext(name)[0] for name in names]
    if names and all(stem.isdigit() for stem in stems):
        names.sort(key=lambda name: (int(os.path.splitext(name)[0]), name))
    else:
        names.sort(key=lambda name: (_natural_key(name), name))
    return [folder / name for name in names]


def _open_path(path: Path, cache_size: int) -> FrameSource:
    if not path.exists():
        raise VideoSourceError(f"video source not found: {path}")
    if path.is_dir():
        try:
            files = list_frame_files(path)
        except OSError as error:
            raise VideoSourceError(f"cannot list the frame folder {path}: {error}") from error
        if not files:
            raise VideoSourceError(
                f"no frames in {path}: expected image files ({', '.join(IMAGE_SUFFIXES)}), e.g. 00000.jpg, "
                "00001.jpg, ..."
            )
        return ImageFilesSource(files, cache_size=cache_size, name=str(path))
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return ImageFilesSource([path], cache_size=cache_size, name=str(path))
    if suffix in VIDEO_SUFFIXES:
        return VideoFileSource(path, cache_size=cache_size)
    # An unknown suffix may still be a video or an image: let the decoders decide.
    try:
        return VideoFileSource(path, cache_size=cache_size)
    except VideoSourceError:
        pass
    try:
        return ImageFilesSource([path], cache_size=cache_size, name=str(path))
    except VideoSourceError:
        raise VideoSourceError(
            f"cannot read {path} as a video or an image: expected a folder of frames, a video file "
            f"({', '.join(VIDEO_SUFFIXES)}) or an image ({', '.join(IMAGE_SUFFIXES)})"
        ) from None


def open_frames(video: Any, cache_size: int = 8) -> FrameSource:
    """Open a video as a lazily decoded `FrameSource`.

    Arguments:
        video: a folder of frames (official "00000.jpg" naming, or any jpg/png names, sorted naturally), a
            video file (mp4, mov, webm, mkv, avi; decoded with PyAV), a single image file, a T, H, W, 3 uint8
            array, a list or tuple of H, W, 3 uint8 arrays or PIL images, or a `FrameSource` (returned as is).
        cache_size: how many decoded frames, and separately how many network inputs, stay in memory.

    Returns:
        A `FrameSource`. Raises `VideoSourceError` when the input cannot be read as a video.
    """
    if isinstance(video, FrameSource):
        return video
    if isinstance(video, (np.ndarray, list, tuple)):
        return ArraySource(video, cache_size=cache_size)
    if isinstance(video, (str, os.PathLike)):
        return _open_path(Path(video), cache_size)
    raise VideoSourceError(
        f"cannot open a video from a {type(video).__name__}: expected a path to a folder of frames, a video "
        "file or an image, a T, H, W, 3 uint8 array, or a list of frames"
    )
