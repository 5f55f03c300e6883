"""The names a front end binds: commands (buttons, keys, API endpoints), tools, tracking directions and
export kinds, and the interaction limits they share."""

from __future__ import annotations

from ..engine.errors import SessionError

POSITIVE, NEGATIVE, BOX = "positive", "negative", "box"
TOOLS = (POSITIVE, NEGATIVE, BOX)
DIRECTIONS = ("forward", "backward", "both")
EXPORT_KINDS = ("pngs", "davis", "coco", "video", "session")
DEFAULT_DISPLAY = (960, 640)  # (max width, max height) frames are drawn at, in every front end
MAX_POINTS_PER_SIDE = 64

COMMANDS: tuple[str, ...] = (
    "add_object",
    "select_object",
    "rename_object",
    "remove_object",
    "remove_last_point",
    "undo",
    "redo",
    "clear_frame",
    "clear_object",
    "reset",
    "propagate_forward",
    "propagate_backward",
    "propagate_both",
    "stop",
    "segment_everything",
    "export",
    "save",
    "load",
    "open",
    "tool_positive",
    "tool_negative",
    "tool_box",
    "next_frame",
    "prev_frame",
    "first_frame",
    "last_frame",
    "next_doubtful",
    "prev_doubtful",
    *(f"select_object_{i}" for i in range(1, 10)),
)
"""Every command name a front end can bind to a button or key."""


def check_points_per_side(points_per_side: int) -> None:
    """Refuse a "segment everything" grid outside 1 to `MAX_POINTS_PER_SIDE` (a `SessionError` says so)."""
    if (
        isinstance(points_per_side, bool)
        or not isinstance(points_per_side, int)
        or not (1 <= points_per_side <= MAX_POINTS_PER_SIDE)
    ):
        raise SessionError(
            f"Points per side must be a whole number from 1 to {MAX_POINTS_PER_SIDE}, got "
            f"{points_per_side!r}: 16 is a good start, 32 finds smaller objects (4x slower)."
        )
