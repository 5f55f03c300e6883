"""Video frame sources: frames decoded on demand, with a bounded cache.

`open_frames` turns whatever the user gives (a folder of images, a video file, an array or a list of frames,
one image) into a `FrameSource`. A source knows its length and frame size up front but decodes a frame only
when asked, and keeps at most `cache_size` decoded frames and `cache_size` network inputs, so memory does not
grow with the length of the video.

`network_input` reproduces the official JPEG-folder loader exactly: PIL bicubic resize of the uint8 RGB frame
to a square, /255, then ImageNet normalisation. Every kind of source goes through that same pipeline, so the
same pixels give the same tensor whatever they came from.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import VideoSourceError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")


def _normalised_values() -> np.ndarray:
    """3, 256 float32: the network value of every uint8 level in each channel.

    Computed with the official loader's arithmetic (divide by 255 in float64, store as float32, then subtract
    the mean and divide by the std in float32), so a table lookup gives its exact values, in a fraction of the
    time the per-pixel arithmetic takes.
    """
    unit = torch.from_numpy((np.arange(256, dtype=np.float64) / 255.0).astype(np.float32))
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None]
    return ((unit[None] - mean) / std).numpy()


_NORMALISED = _normalised_values()


def to_network_input(rgb: np.ndarray, image_size: int) -> torch.Tensor:
    """Resize an H, W, 3 uint8 RGB frame to the model's square input and normalise it.

    Returns a 3, S, S float32 tensor: PIL bicubic resize on uint8 (the official video loader's
    `.resize((S, S))`, whose default for RGB images is bicubic), /255, then (x - mean) / std.
    """
    resized = np.asarray(Image.fromarray(rgb).resize((image_size, image_size), Image.Resampling.BICUBIC))
    image = np.empty((3, image_size, image_size), dtype=np.float32)
    for channel in range(3):
        np.take(_NORMALISED[channel], resized[..., channel], out=image[channel])
    return torch.from_numpy(image)


class _LRU:
    """A tiny least-recently-used map holding at most `capacity` entries (0 keeps nothing)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class FrameSource:
    """Frames of one video, decoded on demand.

    Attributes:
        height, width: original frame size in pixels (after rotation metadata for video files).
        fps: frames per second when the source knows it (video files), else None.
        name: the path or a short description, used in error messages.

    Subclasses implement `_read(index)`; caching, index checks and the network pipeline live here.
    Returned arrays are read-only and returned tensors are shared with the cache: copy before modifying.
    """

    height: int
    width: int
    fps: float | None = None
    _closed = False

    def __init__(
        self, num_frames: int, height: int, width: int, *, cache_size: int = 8, name: str = "frames"
    ) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self._num_frames = num_frames
        self.height = height
        self.width = width
        self.name = name
        self.cache_size = cache_size
        self._frames = _LRU(cache_size)
        self._inputs = _LRU(cache_size)
        # One decoder per source: a prefetching thread and the caller must not decode at the same time.
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return self._num_frames

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, frames={len(self)}, size={self.height}x{self.width})"

    def _check_index(self, index: int) -> int:
        if self._closed:
            raise VideoSourceError(f"{self.name} was closed")
        index = int(index)
        if not 0 <= index < self._num_frames:
            raise IndexError(f"frame index {index} out of range: {self.name} has {self._num_frames} frames")
        return index

    def rgb(self, index: int) -> np.ndarray:
        """The frame at `index` as a read-only H, W, 3 uint8 RGB array at its original size."""
        index = self._check_index(index)
        with self._lock:
            frame = self._frames.get(index)
            if frame is None:
                frame = self._remember(index, self._read(index))
            return frame

    def _remember(self, index: int, frame: np.ndarray) -> np.ndarray:
        """Check a freshly decoded frame, make it read-only (without copying) and cache it."""
        if frame.shape != (self.height, self.width, 3):
            raise VideoSourceError(
                f"frame {index} of {self.name} is {frame.shape[1]}x{frame.shape[0]} (WxH), expected "
                f"{self.width}x{self.height} like the first frame; all frames must have one size"
            )
        if frame.flags.writeable:
            frame = frame.view()
            frame.flags.writeable = False
        self._frames.put(index, frame)
        return frame

    def network_input(self, index: int, image_size: int) -> torch.Tensor:
        """The frame at `index` as the model's input: a 3, S, S float32 ImageNet-normalised tensor on CPU."""
        index = self._check_index(index)
        with self._lock:
            key = (index, int(image_size))
            image = self._inputs.get(key)
            if image is None:
                image = to_network_input(self.rgb(index), int(image_size))
                self._inputs.put(key, image)
            return image

    def close(self) -> None:
        """Release the caches and any open file or decoder; the source cannot be read afterwards."""
        with self._lock:
            self._frames.clear()
            self._inputs.clear()
            self._closed = True

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, index: int) -> np.ndarray:
        raise NotImplementedError


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
    from .video_file import VideoFileSource

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
