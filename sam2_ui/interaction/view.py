"""The view model: everything a front end draws, computed once by the interaction layer.

A front end never asks the session what to show; it draws a `View`: the rendered frame at display size, the
object list with a timeline per object, the status line, messages, which buttons are enabled, and the
progress of a running tracking run. Views are immutable snapshots, so a front end may keep the last one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..engine.colors import RGB
from ..output.render import DisplayMapping, Layers

# One character per frame in an object's timeline, from the most to the least important (a frame shows the
# first that applies): the user's own prompt, a tracked mask older than a later prompt (track again),
# a mask the model was unsure of (look and correct), a mask, nothing.
PROMPTED = "P"
STALE = "S"
DOUBTFUL = "D"
MASKED = "M"
NOTHING = "."
TIMELINE_CODES = (PROMPTED, STALE, DOUBTFUL, MASKED, NOTHING)

INFO, WARNING, ERROR = "info", "warning", "error"


@dataclass(frozen=True)
class Message:
    """Something to tell the user once: ``level`` is "info", "warning" or "error"."""

    level: str
    text: str


@dataclass(frozen=True)
class ObjectRow:
    """One object in the object list.

    timeline: one of `TIMELINE_CODES` per frame (``len == num_frames``). key: the digit that selects it
    ("1".."9"), or "" beyond the ninth object.
    """

    id: int
    name: str
    color: RGB
    selected: bool
    timeline: str
    key: str

    def frames(self, code: str) -> list[int]:
        """Frames whose timeline shows ``code``."""
        return [i for i, c in enumerate(self.timeline) if c == code]


@dataclass(frozen=True)
class Progress:
    """A tracking run in progress: frames done of planned, seconds left, the leg running."""

    done: int
    total: int
    eta_s: float
    direction: str

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass(frozen=True, eq=False)
class View:
    """What a front end shows after an event.

    image: h, w, 3 uint8 frame with overlays, outlines, markers (the selected object highlighted) and the
      pending box corner, or None before any media is open (and in layered views).
    layers: in layered views (``Interaction(layered=True)``), the same picture as three layers (frame,
      masks, markers with the pending corner), else None. mapping: display pixels <-> frame pixels.
    frame / num_frames: the current frame and the frame count (0 before any media).
    tool: "positive", "negative" or "box". pending_box: the first corner (frame pixels) of a box being given.
    objects: the object list, in id order. selected: the selected object id or None.
    status: one line saying where the user is and what they can do next.
    messages: what happened since the previous view (errors, warnings, notes), oldest first.
    enabled: command name -> whether its button is enabled (every name in ``commands.COMMANDS``).
    estimate: before a run, how long tracking from here would take ("" if unknown or nothing to track).
    progress: the running tracking run, or None.
    notes: the last few notes ("Tracked forward: 40 of 40 frames", "Undid add point"), in every view until
      newer ones replace them, for a status line; ``messages`` has each note once.
    stats: counts of "stale", "replaced" (prompts a tracking run computed over), "doubtful" and "tracked"
      frames over all objects.
    precision: how the network runs for this session, for people ("bf16 autocast on CPU (AVX-512 BF16)",
      "fp32 on CUDA"; `Session.precision_label`), "" before any media.
    """

    image: np.ndarray | None
    mapping: DisplayMapping | None
    frame: int
    num_frames: int
    tool: str
    pending_box: tuple[float, float] | None
    objects: tuple[ObjectRow, ...]
    selected: int | None
    status: str
    messages: tuple[Message, ...]
    enabled: Mapping[str, bool]
    layers: Layers | None = None
    estimate: str = ""
    progress: Progress | None = None
    is_image: bool = False
    fps: float = 0.0
    stats: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    precision: str = ""

    @property
    def errors(self) -> list[str]:
        return [m.text for m in self.messages if m.level == ERROR]

    def row(self, obj: int) -> ObjectRow:
        for row in self.objects:
            if row.id == obj:
                return row
        raise KeyError(obj)
