"""What the model remembers, for teaching: which frames one object's memory bank gives a frame, and how sure
the model was of the object on every frame.

`MemoryView` is read from the predictor's state (``SAM2VideoPredictor.memory_layout``) and from the object
scores kept with each mask; nothing is recomputed. `render_memory_strip` draws it as two rows over the
video's frames: the memory (conditioning frames, the recent memories, object pointers, the current frame)
and the object score per frame. `LEGEND` says what each colour and mark of the strip means, for any front
end to draw (`legend_html` for the widget; the notebooks draw it with matplotlib).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..engine.colors import RGB, css_hex
from ..engine.document import SessionState
from ..engine.executor import ModelExecutor
from ..engine.guard import SessionGuard

CONDITIONING_COLOR: RGB = (245, 190, 40)  # conditioning frames (prompts, kept corrections): always in memory
RECENT_COLOR: RGB = (60, 130, 235)  # the last tracked frames before this one
POINTER_COLOR: RGB = (170, 90, 220)  # frames that only lend their object pointer
CURRENT_COLOR: RGB = (255, 255, 255)
PRESENT_COLOR: RGB = (60, 185, 90)  # object score > 0: the model sees the object
ABSENT_COLOR: RGB = (225, 70, 60)
BACKGROUND: RGB = (32, 32, 36)
EMPTY: RGB = (70, 70, 76)
SCORE_RANGE = 10.0  # object score logits beyond +-10 are drawn at full height


@dataclass(frozen=True)
class LegendEntry:
    """One colour of the strip and what it means. ``mark`` is how the strip draws it: "cell" (a frame's full
    height in the memory row), "low" (a thin mark at the bottom of the memory row), "outline" (a frame around
    both rows), "up" / "down" (a bar above or below the score row's middle line)."""

    color: RGB
    label: str
    mark: str


LEGEND: tuple[LegendEntry, ...] = (
    LegendEntry(CONDITIONING_COLOR, "conditioning frame (prompts, kept corrections): always read", "cell"),
    LegendEntry(RECENT_COLOR, "recent tracked frame whose memory is read (brighter: nearer)", "cell"),
    LegendEntry(POINTER_COLOR, "frame that lends only its object pointer", "low"),
    LegendEntry(CURRENT_COLOR, "the frame being segmented (outline)", "outline"),
    LegendEntry(PRESENT_COLOR, "object score > 0: the model sees the object", "up"),
    LegendEntry(ABSENT_COLOR, "object score < 0: the model does not see it", "down"),
)
"""Every colour `render_memory_strip` draws besides the background and the score row's middle line (a
frame without a bar there has no mask yet)."""


@dataclass(frozen=True)
class MemoryView:
    """One object's memory as seen from one frame.

    conditioning: the object's conditioning frames (every one is in memory, future ones too): its first
    prompts, and its corrections where the session keeps them (`Session.corrections_as_conditioning`).
    recent: (slot, frame) of the tracked frames just before this one whose memories are read (slot 1 the
    oldest). pointers: the frames whose object pointers are read. reverse: "before" means later frames
    (tracked backwards).
    prompted: this frame has the object's own prompt (its mask comes from that prompt, not from memory).
    scores: per frame of the video, the object score logit of the object's mask (> 0: the model sees the
    object), or None where there is no mask or the score is unknown.
    note: why the memory is not shown, or "".
    """

    frame: int
    obj: int
    name: str
    num_frames: int
    conditioning: tuple[int, ...]
    recent: tuple[tuple[int, int], ...]
    pointers: tuple[int, ...]
    reverse: bool
    prompted: bool
    scores: tuple[float | None, ...]
    note: str = ""

    @property
    def memory_frames(self) -> list[int]:
        """Every frame whose spatial memory this frame attends to, conditioning frames first."""
        return [*self.conditioning, *(t for _, t in self.recent)]

    def describe(self) -> str:
        """One paragraph saying what the strip shows."""
        if self.note:
            return self.note
        way = "later" if self.reverse else "earlier"
        parts = [
            f"Tracking {self.name} on frame {self.frame} reads the memories of "
            f"{len(self.conditioning)} conditioning frame(s) {_frames(self.conditioning)}"
        ]
        if self.recent:
            parts.append(f"and of the {len(self.recent)} tracked frame(s) just {way} {_frames(self.recent)}")
        text = " ".join(parts) + f", and the object pointers of {len(self.pointers)} frames."
        if self.prompted:
            text += " This frame has the object's own prompt, so its mask comes from the prompt."
        score = self.scores[self.frame]
        if score is not None:
            seen = "sees the object" if score > 0 else "does not see the object"
            text += f" Object score here: {score:+.1f} (the model {seen})."
        return text


def _frames(frames) -> str:
    indices = [t if isinstance(t, int) else t[1] for t in frames]
    if len(indices) > 8:
        return f"({', '.join(map(str, indices[:8]))}, ...)"
    return f"({', '.join(map(str, indices))})"


def render_memory_strip(view: MemoryView, width: int, row_height: int = 14) -> np.ndarray:
    """Two rows over the video's frames, ``2 * row_height + 3`` by ``width`` pixels (RGB uint8).

    Top: conditioning frames (amber), the recent memories (blue, brighter when nearer), frames that only
    lend an object pointer (purple, a thin mark), the current frame (white outline). Bottom: the object
    score per frame, a green bar up for "present", red down for "absent", grey where unknown.
    """
    n = view.num_frames
    height = 2 * row_height + 3
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)

    def span(frame: int) -> tuple[int, int]:
        """The pixel columns (inclusive) of a frame; frames share a column when there are more than pixels."""
        x0 = frame * width // n
        return x0, max(x0, (frame + 1) * width // n - 1)

    top = (0, row_height - 1)
    pointer_only = set(view.pointers) - set(view.memory_frames)
    for t in pointer_only:
        x0, x1 = span(t)
        draw.rectangle([x0, top[1] - row_height // 3, x1, top[1]], fill=POINTER_COLOR)
    num_recent = max(1, len(view.recent))
    for i, (_, t) in enumerate(sorted(view.recent)):  # oldest slot first
        shade = 0.55 + 0.45 * (i + 1) / num_recent
        x0, x1 = span(t)
        draw.rectangle([x0, top[0], x1, top[1]], fill=tuple(round(c * shade) for c in RECENT_COLOR))
    for t in view.conditioning:
        x0, x1 = span(t)
        draw.rectangle([x0, top[0], x1, top[1]], fill=CONDITIONING_COLOR)
    x0, x1 = span(view.frame)
    draw.rectangle([x0, 0, x1, height - 1], outline=CURRENT_COLOR)

    middle = row_height + 2 + row_height // 2
    draw.line([0, middle, width - 1, middle], fill=EMPTY)
    for t, score in enumerate(view.scores):
        if score is None:
            continue
        x0, x1 = span(t)
        reach = max(1, round(min(abs(score), SCORE_RANGE) / SCORE_RANGE * (row_height // 2)))
        if score > 0:
            draw.rectangle([x0, middle - reach, x1, middle], fill=PRESENT_COLOR)
        else:
            draw.rectangle([x0, middle, x1, middle + reach], fill=ABSENT_COLOR)
    return np.asarray(image)


def legend_html() -> str:
    """A one-line colour legend for the strip (the `LEGEND` entries)."""

    def swatch(entry: LegendEntry) -> str:
        fill = "transparent" if entry.mark == "outline" else css_hex(entry.color)
        box = (
            f"display:inline-block;width:10px;height:10px;background:{fill};margin:0 3px 0 10px;"
            f"outline:1px solid {css_hex(BACKGROUND)};vertical-align:middle"
        )
        return f"<span style='{box}'></span>{entry.label}"

    return "".join(swatch(entry) for entry in LEGEND)


def read_memory_view(
    state: SessionState, guard: SessionGuard, executor: ModelExecutor, frame: int, obj: int, num_frames: int
) -> MemoryView:
    """``obj``'s memory seen from ``frame``: read from the executor's predictor state (between two tracked
    frames during a run) and the object scores stored with the masks; a note says why the memory cannot be
    shown (closed session, state in a GPU worker, state to be rebuilt after undo, redo or loading)."""
    with guard.lock:
        name = state.objects.get(obj).name
        scores: list[float | None] = [None] * num_frames
        for f, entry in state.store.of_object(obj).items():
            scores[f] = entry.score
        prompted = (frame, obj) in state.table
    layout, note = None, ""
    with guard.model_lock:
        if guard.closed:
            note = "This session is closed: its memory was released."
        elif not executor.holds_state:
            note = (
                "The memory bank lives in the GPU worker that runs the model (ZeroGPU), not in this "
                "process: the memory view shows it where the model runs in the same process."
            )
        elif guard.propagating or executor.reflects(state.history.log()):
            layout = executor.memory_layout(frame, obj)
            if layout is None:
                note = f"{name} has no prompt yet: click on it to give the model its first memory."
        else:
            note = "The memory bank is rebuilt from the prompts at the next click or tracking run."
    return MemoryView(
        frame=frame,
        obj=obj,
        name=name,
        num_frames=num_frames,
        conditioning=tuple(layout.conditioning) if layout else (),
        recent=tuple(layout.recent) if layout else (),
        pointers=tuple(layout.pointers) if layout else (),
        reverse=bool(layout.reverse) if layout else False,
        prompted=prompted,
        scores=tuple(scores),
        note=note,
    )
