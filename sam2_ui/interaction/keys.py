"""The keyboard map both front ends share: a key press names a command of the interaction layer.

Keys are DOM ``KeyboardEvent.key`` values ("a", "ArrowRight", "Escape", ...); letters are matched without
case. Ctrl/Cmd+Z and Ctrl/Cmd+Shift+Z or Ctrl/Cmd+Y work as undo and redo as well.
"""

from __future__ import annotations

KEYMAP: dict[str, str] = {
    "a": "add_object",
    "p": "tool_positive",
    "n": "tool_negative",
    "b": "tool_box",
    "z": "undo",
    "y": "redo",
    "t": "propagate_both",
    "f": "propagate_forward",
    "r": "propagate_backward",
    "Escape": "stop",
    "ArrowRight": "next_frame",
    ".": "next_frame",
    "ArrowLeft": "prev_frame",
    ",": "prev_frame",
    "Home": "first_frame",
    "End": "last_frame",
    "c": "clear_frame",
    "]": "next_doubtful",
    "[": "prev_doubtful",
    "Delete": "remove_last_point",
    "Backspace": "remove_last_point",
    **{str(i): f"select_object_{i}" for i in range(1, 10)},
}
"""Key -> command name (see ``commands.COMMANDS``)."""

KEY_HELP: tuple[tuple[str, str], ...] = (
    ("a", "add an object"),
    ("p / n / b", "positive point / negative point / box tool"),
    ("1 - 9", "select object 1 to 9 in the list"),
    ("z / y (Ctrl+Z / Ctrl+Shift+Z)", "undo / redo"),
    ("t / f / r", "track both ways / forward / backward from this frame"),
    ("Esc", "stop tracking, or drop a half-drawn box"),
    ("<- / -> or , / .", "previous / next frame"),
    ("Home / End", "first / last frame"),
    ("[ / ]", "previous / next doubtful frame (amber on the timeline)"),
    ("c", "clear this frame's prompts"),
    ("Delete / Backspace", "remove the selected object's last point on this frame"),
)
"""What the keys do, for a help panel."""


def command_for_key(key: str, ctrl: bool = False, shift: bool = False, meta: bool = False) -> str | None:
    """The command a key press names, or None for a key without one (or with other modifiers)."""
    name = key if len(key) > 1 else key.lower()
    if ctrl or meta:
        if name == "z":
            return "redo" if shift else "undo"
        if name == "y":
            return "redo"
        return None
    return KEYMAP.get(name)


def key_help_markdown() -> str:
    """The key map as a Markdown table."""
    rows = "\n".join(f"| `{keys}` | {what} |" for keys, what in KEY_HELP)
    return "| Key | Does |\n|---|---|\n" + rows
