"""Opening what a person gives the engine as a video, within a budget of frames and pixels.

Everything goes through `model.video_frames.open_frames`, so frames stay lazily decoded with a bounded cache.
A single image (a file, an H, W, 3 array or a PIL image) is a one-frame video. Input over the budget is
reduced, and the reduction is said in a message, never done silently:

- a frame side longer than ``Limits.max_side`` -> every frame is downscaled (aspect kept) and the session
  works at that size: masks, exports and coordinates are in the downscaled frame's pixels;
- more frames than ``Limits.max_frames`` -> only the first ``max_frames`` are opened (or, with
  ``Limits(truncate=False)``, `SessionError`).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model.errors import VideoSourceError
from model.video.video_frames import IMAGE_SUFFIXES, FrameSource, ImageFilesSource, open_frames

from .errors import SessionError

DEFAULT_FPS = 30.0
"""Frame rate assumed for sources that do not carry one (image folders, arrays), unless given."""


@dataclass(frozen=True)
class Limits:
    """The budget a session opens media within.

    max_frames: most frames opened (None: no limit).
    max_side: longest frame side in pixels; larger frames are downscaled to it (None: no limit).
    truncate: over ``max_frames``, open the first ``max_frames`` with a message (True), or refuse with a
      `SessionError` (False).
    cache_frames: decoded frames kept in memory.
    max_undo: undo steps kept (older ones can no longer be undone; their prompts stay).
    """

    max_frames: int | None = 3000
    max_side: int | None = 1280
    truncate: bool = True
    cache_frames: int = 8
    max_undo: int = 200

    def __post_init__(self) -> None:
        for name in ("max_frames", "max_side"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Limits.{name} must be at least 1 or None, got {value}")
        if self.cache_frames < 1 or self.max_undo < 1:
            raise ValueError("Limits.cache_frames and Limits.max_undo must be at least 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class MediaRef:
    """How another process opens the same frames: the source (a path, or the frames themselves) and the
    limits and rate it was opened with. Picklable; `open` gives frames equal to the original's."""

    source: Any
    limits: Limits
    fps: float | None

    def open(self) -> Media:
        return open_media(self.source, self.limits, self.fps)


@dataclass
class Media:
    """An opened source: ``frames`` at session size, and what was done to fit the limits."""

    frames: FrameSource
    fps: float
    fps_known: bool  # False when the source had no rate and DEFAULT_FPS (or the caller's) was used
    path: Path | None  # the file or folder, or None for frames given in memory
    description: str
    original_size: tuple[int, int]  # width, height before downscaling
    original_num_frames: int
    messages: list[str]
    ref: MediaRef  # how a worker process opens the same frames

    def rgb(self, index: int) -> np.ndarray:
        """Frame ``index`` (H, W, 3 uint8, read-only); a frame that cannot be decoded is a `SessionError`."""
        try:
            return self.frames.rgb(index)
        except VideoSourceError as error:
            raise SessionError(f"Cannot decode frame {index} of {self.description}: {error}") from error


class LimitedFrames(FrameSource):
    """The first ``num_frames`` frames of another source, resized to ``width`` x ``height`` if that differs.

    Frames of the base's size are passed through without a copy.
    """

    def __init__(self, base: FrameSource, num_frames: int, width: int, height: int, cache_size: int) -> None:
        super().__init__(num_frames, height, width, cache_size=cache_size, name=base.name)
        self.base = base
        self.fps = base.fps

    def _read(self, index: int) -> np.ndarray:
        try:
            rgb = self.base.rgb(index)
        except VideoSourceError as error:  # said without the decoder's errno and the file's folder
            if isinstance(self.base, ImageFilesSource):
                name = self.base.paths[index].name
                raise VideoSourceError(
                    f"the image {name} of frame {index} is damaged or not an image"
                ) from error
            raise VideoSourceError(f"the video data of frame {index} is damaged") from error
        if (self.width, self.height) == (self.base.width, self.base.height):
            return rgb
        # reducing_gap: a box reduction first, then bilinear; antialiased and fast on 4K frames.
        image = Image.fromarray(rgb).resize(
            (self.width, self.height), Image.Resampling.BILINEAR, reducing_gap=2.0
        )
        return np.asarray(image)

    def close(self) -> None:
        super().close()
        self.base.close()


def fit_side(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the longer side is at most ``max_side`` (never up)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def open_media(source: Any, limits: Limits, fps: float | None = None) -> Media:
    """Open ``source`` (see `Session.open`) within ``limits``; `SessionError` if it cannot be read."""
    path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    ref = MediaRef(str(path.resolve()) if path is not None else source, limits, fps)
    if isinstance(source, Image.Image) or (isinstance(source, np.ndarray) and source.ndim == 3):
        source = [source]  # one image: a one-frame video
    try:
        # The base caches little: the session's own source (below) holds the frames at session size.
        base = open_frames(source, cache_size=2)
    except (VideoSourceError, OSError) as error:
        raise SessionError(
            f"Cannot open {_describe(source, path)}: {_why(error, path)} {_OPEN_HINT}"
        ) from error

    messages = []
    total = len(base)
    count = total
    if limits.max_frames is not None and total > limits.max_frames:
        if not limits.truncate:
            base.close()
            raise SessionError(
                f"{_describe(source, path)} has {total} frames, more than the limit of {limits.max_frames} "
                "(Limits.max_frames). Trim the video, or open it with a higher limit."
            )
        count = limits.max_frames
        messages.append(
            f"{_describe(source, path)} has {total} frames; only the first {count} were opened "
            f"(Limits.max_frames={count}). Trim the video or raise the limit to work on the rest."
        )
    width, height = fit_side(base.width, base.height, limits.max_side)
    if (width, height) != (base.width, base.height):
        messages.append(
            f"{_describe(source, path)} is {base.width}x{base.height}; its frames were downscaled to "
            f"{width}x{height} to fit the limit of {limits.max_side} pixels per side (Limits.max_side). "
            f"Masks, coordinates and exports are at {width}x{height}."
        )
    frames = LimitedFrames(base, count, width, height, cache_size=limits.cache_frames)
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=3)

    known = base.fps is not None and base.fps > 0
    rate = float(fps) if fps is not None else (float(base.fps) if known else DEFAULT_FPS)
    if rate <= 0 or not np.isfinite(rate):
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Media(
        frames=frames,
        fps=rate,
        fps_known=fps is not None or known,
        path=path.resolve() if path is not None else None,
        description=_describe(source, path),
        original_size=(base.width, base.height),
        original_num_frames=total,
        messages=messages,
        ref=ref,
    )


_OPEN_HINT = "Give a video file (mp4, mov, webm, mkv, avi), a folder of JPEG or PNG frames, or an image."


def _describe(source: Any, path: Path | None) -> str:
    if path is not None:  # the name only: an upload's path is a server's temporary folder
        return path.name or str(path)
    if isinstance(source, np.ndarray):
        return f"the array of shape {source.shape}"
    if isinstance(source, (list, tuple)):
        return "the image" if len(source) == 1 else f"the list of {len(source)} frames"
    return f"the {type(source).__name__}"


def _why(error: Exception, path: Path | None) -> str:
    """Why a source cannot be opened, as a sentence a person can act on: no errno numbers, libav function
    names or temporary folders (the decoders' own words are kept only where they carry none)."""
    if path is None:
        return f"{plain_words(str(error))}."
    if not path.exists():
        # Not the path: a full path (or the working folder's) shows a server's folders in a web app.
        where = "" if path.is_absolute() else " (relative to the working folder)"
        return f"there is no file or folder at the path given{where}: check its name and folder."
    if path.is_dir():
        if "no frames in" in str(error):
            return "the folder holds no JPEG or PNG frames (name them 00000.jpg, 00001.jpg, ...)."
        return f"{plain_words(str(error))}."
    if isinstance(error, OSError):
        return f"{error.strerror or plain_words(str(error))}."
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes): copy or download it again."
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return (
            f"it is not a readable image (damaged, cut short, or not really a {path.suffix[1:].upper()}): "
            "save it again as JPEG or PNG."
        )
    if "no video stream" in str(error):
        return "it has no video stream (is it an audio file?)."
    return (
        "it is not a readable video (damaged, cut short, or not a video at all): download or copy it again, "
        "or re-encode it."
    )


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
_CLASS_NAME = re.compile(r"\b(?:[A-Z][a-z0-9]*)+(?:Error|Exception):\s*")
_LIBAV_CALL = re.compile(r":?\s*'\w+\(\)'")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])'?(?:[A-Za-z]:)?[\\/](?:[^\s'\":,\\/]+[\\/])*([^\s'\":,\\/]+)'?")


def plain_words(text: str) -> str:
    """A decoder's message without errno numbers, exception class names, libav function names or folders:
    each absolute path is cut to its last part (an upload's path holds a server's temporary folder)."""
    text = _ERRNO.sub("", text)
    text = _CLASS_NAME.sub("", text)
    text = _LIBAV_CALL.sub("", text)
    text = _ABSOLUTE_PATH.sub(lambda m: m.group(1), text)
    return text.strip().rstrip(".")
