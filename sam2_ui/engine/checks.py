"""Checks of what a person asked for, with messages that say what to do instead.

Mistakes a person can make (a frame that does not exist, a click beside the image, a box with no area)
raise `SessionError`; wrong types from a front end stay ``TypeError``.
"""

from __future__ import annotations

import numpy as np

from .errors import SessionError


def check_index(value: object, what: str) -> int:
    """An int (numpy ints too, bools not) or TypeError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return int(value)


def check_frame(frame: object, num_frames: int) -> int:
    frame = check_index(frame, "a frame index")
    if not 0 <= frame < num_frames:
        raise SessionError(f"Frame {frame} does not exist: the video has frames 0 to {num_frames - 1}.")
    return frame


def check_point(x: float, y: float, size: tuple[int, int]) -> tuple[float, float]:
    """A click in frame pixels; it must fall on a pixel of the ``size`` (width, height) frame."""
    x, y = float(x), float(y)
    w, h = size
    if not (np.isfinite(x) and np.isfinite(y) and -0.5 <= x < w - 0.5 and -0.5 <= y < h - 0.5):
        raise SessionError(
            f"The click at ({x:.1f}, {y:.1f}) is outside the {w}x{h} frame: click on the image."
        )
    return x, y


def check_box(
    x0: float, y0: float, x1: float, y1: float, size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """A box as (left, top, right, bottom) from corners in any order, clipped to the frame.

    A drag that overshoots the frame is clipped to its edge pixels; a box entirely outside the frame, or
    less than one pixel wide or high, is refused.
    """
    values = [float(v) for v in (x0, y0, x1, y1)]
    if not all(np.isfinite(values)):
        raise SessionError("The box has a corner that is not a number: drag the box again.")
    w, h = size
    left, right = sorted(values[0::2])
    top, bottom = sorted(values[1::2])
    if right < -0.5 or left >= w - 0.5 or bottom < -0.5 or top >= h - 0.5:
        raise SessionError(
            f"The box ({left:.1f}, {top:.1f})-({right:.1f}, {bottom:.1f}) is outside the {w}x{h} frame: "
            "drag it on the image."
        )
    left, right = max(left, 0.0), min(right, w - 1.0)
    top, bottom = max(top, 0.0), min(bottom, h - 1.0)
    if right - left < 1 or bottom - top < 1:
        raise SessionError("The box has no area: drag a rectangle around the object.")
    return left, top, right, bottom
