"""Building a `View`: the rendered frame (one image or three layers), object rows with timelines, the status
line, tracking estimates and which commands are enabled.

`build_view` is a function of the session and of `Shown`, a snapshot of what the interaction shows (taken
under its lock); it changes neither. `Shown` sits here as the builder's input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from ..engine.errors import SessionError
from ..output.render import DisplayMapping, Layers
from ..session import Session
from .commands import BOX, COMMANDS, NEGATIVE, POSITIVE
from .view import (
    DOUBTFUL,
    MASKED,
    NOTHING,
    PROMPTED,
    STALE,
    WARNING,
    Message,
    ObjectRow,
    Progress,
    View,
)


@dataclass(frozen=True)
class Shown:
    """What an interaction shows, for one view.

    frame, tool, pending_box: the interaction's current frame, tool and half-given box (frame, x, y of the
    first corner, frame pixels). progress: the running (or announced) tracking run, or None. messages, notes:
    what `Notes.collect` gave for this view.
    """

    frame: int
    tool: str
    pending_box: tuple[int, float, float] | None
    progress: Progress | None
    messages: tuple[Message, ...]
    notes: tuple[str, ...]


def build_view(
    session: Session | None, shown: Shown, display_size: tuple[int, int], layered: bool = False
) -> View:
    """The view of ``session`` as ``shown``, the frame rendered at ``display_size`` (as three layers if
    ``layered``)."""
    if session is None:
        return View(
            image=None,
            mapping=None,
            frame=0,
            num_frames=0,
            tool=shown.tool,
            pending_box=None,
            objects=(),
            selected=None,
            status="Upload a video or an image to start.",
            messages=shown.messages,
            notes=shown.notes,
            enabled=_enabled(None, shown.frame, None),
        )
    frame, progress = shown.frame, shown.progress
    image, layers, mapping, corner, warnings = _render(session, shown, display_size, layered)
    rows = _rows(session)
    doubtful = session.doubtful_frames()
    stats = {
        "stale": len(session.stale_frames()),
        "replaced": len(session.replaced_prompt_frames()),
        "doubtful": len(doubtful),
        "tracked": len(session.tracked_frames()),
    }
    return View(
        image=image,
        layers=layers,
        mapping=mapping,
        frame=frame,
        num_frames=session.num_frames,
        tool=shown.tool,
        pending_box=corner,
        objects=rows,
        selected=session.selected,
        status=_status(session, frame, shown.tool, rows, progress, stats, corner is not None),
        messages=shown.messages + warnings,
        enabled=_enabled(session, frame, progress, doubtful),
        estimate="" if progress is not None else _estimate(session, frame),
        progress=progress,
        notes=shown.notes,
        is_image=session.is_image,
        fps=session.fps,
        stats=stats,
        precision=session.precision_label,
    )


def _render(
    session: Session, shown: Shown, display_size: tuple[int, int], layered: bool
) -> tuple[
    np.ndarray | None, Layers | None, DisplayMapping | None, tuple[float, float] | None, tuple[Message, ...]
]:
    """The frame as an image or as layers, its mapping, the pending corner drawn on it (frame pixels, or None)
    and a warning if the frame could not be rendered."""
    image, layers, mapping, warnings = None, None, None, ()
    try:
        if layered:
            layers = session.render_layers(shown.frame, display_size)
            mapping = layers.mapping
        else:
            image, mapping = session.render(shown.frame, display_size)
    except SessionError as error:  # an undecodable frame: say so, but let the user act elsewhere
        warnings = (Message(WARNING, str(error)),)
    pending, corner = shown.pending_box, None
    if pending is not None and pending[0] == shown.frame and mapping is not None:
        corner = (pending[1], pending[2])
        if layers is not None:
            layers = replace(layers, markers=_draw_corner(layers.markers, mapping.to_display(*corner)))
        else:
            image = _draw_corner(image, mapping.to_display(*corner))
    return image, layers, mapping, corner, warnings


def _rows(session: Session) -> tuple[ObjectRow, ...]:
    n = session.num_frames
    selected = session.selected
    rows = []
    for i, info in enumerate(session.objects):
        codes = bytearray(NOTHING.encode() * n)
        for code, frames in (
            (MASKED, session.tracked_frames(info.id)),
            (DOUBTFUL, session.doubtful_frames(info.id)),
            (STALE, session.stale_frames(info.id)),
            (PROMPTED, session.prompted_frames(info.id)),
        ):
            for f in frames:
                codes[f] = ord(code)
        key = str(i + 1) if i < 9 else ""
        rows.append(ObjectRow(info.id, info.name, info.color, info.id == selected, codes.decode(), key))
    return tuple(rows)


def _estimate(session: Session, frame: int) -> str:
    if session.is_image or not session.prompted_frames():
        return ""
    try:
        count, seconds = session.estimate_seconds("both", start=frame)
    except SessionError:
        return ""
    if seconds is None:
        return f"Tracking both ways from frame {frame} visits {count} frames."
    return (
        f"Tracking both ways from frame {frame}: {count} frames, about {_duration(seconds)} "
        f"({session.seconds_per_frame:.2f} s per frame measured here)."
    )


def _status(
    session: Session,
    frame: int,
    tool: str,
    rows: Sequence[ObjectRow],
    progress: Progress | None,
    stats: Mapping[str, int],
    box_started: bool,
) -> str:
    if session.closed:
        return "This session was closed: open the media again to keep working."
    if progress is not None and progress.done == 0:
        return f"Tracking {progress.direction} from frame {frame}: starting. Stop keeps what is done."
    if progress is not None:
        return (
            f"Tracking {progress.direction}: frame {frame}, {progress.done}/{progress.total} done, "
            f"about {_duration(progress.eta_s)} left. Stop keeps what is done."
        )
    where = "Image" if session.is_image else f"Frame {frame} (frames 0–{session.num_frames - 1})"
    selected = next((r for r in rows if r.selected), None)
    box_hint = " Box: now click the opposite corner (Esc drops it)." if box_started else ""
    if selected is None:
        if rows:
            return f"{where}. Select an object (1-9) or add one (a) to click for it.{box_hint}"
        return f"{where}. Click on an object to segment it (a first object is made for you).{box_hint}"
    tools = {POSITIVE: "positive point", NEGATIVE: "negative point", BOX: "box (two clicks)"}
    parts = [f"{where}", f"object {selected.name!r}", f"tool: {tools[tool]}"]
    if stats["stale"]:
        parts.append(f"{stats['stale']} stale frames: track again")
    if stats["replaced"]:
        frames = ", ".join(map(str, session.replaced_prompt_frames()[:5]))
        parts.append(
            f"tracking replaced the corrections on frames {frames}"
            f"{', ...' if stats['replaced'] > 5 else ''} (corrections are not kept in this session's "
            "memory): click there again"
        )
    if stats["doubtful"]:
        parts.append(f"{stats['doubtful']} doubtful frames: check them")
    status = " · ".join(parts) + "." + box_hint
    reason = session.doubt_reasons(selected.id).get(frame)
    if reason is not None:
        status += f" This frame is doubtful: {reason}."
    return status


def _enabled(
    session: Session | None, frame: int, progress: Progress | None, doubtful: Sequence[int] = ()
) -> dict[str, bool]:
    """Which commands can run now (``progress``: the run in progress or announced; ``doubtful``: the
    session's doubtful frames, sorted)."""
    enabled = dict.fromkeys(COMMANDS, False)
    enabled["open"] = enabled["load"] = True
    if session is None:
        return enabled
    # A run counts from the press that announced it (Stop works before its first frame is tracked).
    busy = session.is_propagating or progress is not None
    idle = not busy
    has_objects = bool(session.objects)
    selected = session.selected is not None
    prompted = bool(session.prompted_frames())
    last = session.num_frames - 1
    video = not session.is_image
    enabled.update(
        {
            "open": idle,
            "load": idle,
            "add_object": idle,
            "select_object": has_objects,
            "rename_object": idle and selected,
            "remove_object": idle and selected,
            "clear_object": idle and selected,
            "undo": idle and session.can_undo,
            "redo": idle and session.can_redo,
            "clear_frame": idle and bool(session.prompts(frame)),
            "remove_last_point": idle
            and selected
            and session.selected in session.prompts(frame)
            and bool(session.prompts(frame)[session.selected].points),
            "reset": idle and (prompted or bool(session.tracked_frames())),
            "propagate_forward": idle and video and prompted and frame < last,
            "propagate_backward": idle and video and prompted and frame > 0,
            "propagate_both": idle and video and prompted,
            "stop": busy,
            "segment_everything": idle,
            "export": idle and bool(session.tracked_frames()),
            "save": idle,
            "tool_positive": True,
            "tool_negative": True,
            "tool_box": True,
            "next_frame": frame < last,
            "prev_frame": frame > 0,
            "first_frame": frame > 0,
            "last_frame": frame < last,
            "next_doubtful": bool(doubtful) and frame < doubtful[-1],
            "prev_doubtful": bool(doubtful) and frame > doubtful[0],
        }
    )
    for i in range(1, 10):
        enabled[f"select_object_{i}"] = len(session.objects) >= i
    return enabled


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _draw_corner(image: np.ndarray, at: tuple[float, float]) -> np.ndarray:
    """The first corner of a box being given, as a white cross with a dark edge (on RGB or RGBA)."""
    out = Image.fromarray(image)
    draw = ImageDraw.Draw(out)
    u, v = round(at[0]), round(at[1])
    arm = max(6, round(min(out.size) * 0.02))
    for color, width in (((0, 0, 0, 255), 4), ((255, 255, 255, 255), 2)):
        color = color[: len(out.getbands())]
        draw.line([u - arm, v, u + arm, v], fill=color, width=width)
        draw.line([u, v - arm, u, v + arm], fill=color, width=width)
    return np.asarray(out)
