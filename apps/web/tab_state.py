"""What the page of one tab shows, as the server last drew it (front-end state, not the session's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TabState:
    """Per tab: the frame and frame count the page was last given, whether its memory panel is open, and
    a counter that makes every drawn frame distinct (so the page can wait for "the next frame drawn")."""

    frame: int = -1
    num_frames: int = -1
    memory_open: bool = False
    version: int = 0
