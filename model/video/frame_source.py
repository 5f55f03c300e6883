"""What every video frame source is: a `FrameSource` knows its length and frame size up front, decodes a
frame only when asked and keeps a bounded cache, so memory does not grow with the length of the video.

`network_input` reproduces the official JPEG-folder loader exactly: PIL bicubic resize of the uint8 RGB frame
to a square, /255, then ImageNet normalisation. Every kind of source goes through that same pipeline, so the
same pixels give the same tensor whatever they came from.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from PIL import Image

from model.errors import VideoSourceError

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
