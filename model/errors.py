"""Errors a user can cause while loading a model, with messages that say how to fix them."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used: truncated, corrupt, not a SAM 2 checkpoint, or one
    whose weights do not fit the requested config. The message names the file or the config to use."""


class ModelNotAvailableError(FileNotFoundError):
    """A checkpoint is neither at the given path nor in the Hugging Face cache, and could not be
    downloaded. The message says where it looked and how to get the file."""


class VideoSourceError(ValueError):
    """Frames cannot be read from the given video source: a missing or unreadable path, an empty folder, a
    folder with no images or with frames of different sizes, a video with no frames, or an array of the wrong
    shape or dtype. The message names the source and says what was expected."""
