"""A session's outputs as functions over its document (`SessionState`) and media: what a rendered frame
shows, the exports (PNG, DAVIS, COCO, overlay video) and the session file. Each takes what it reads from the
document in one go under the session's lock, then works without it, so a tracking run goes on meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.colors import RGB
from ..engine.document import SessionState
from ..engine.errors import SessionError
from ..engine.guard import SessionGuard
from ..engine.masks import FrameMasksView
from ..engine.media import Limits, Media
from ..engine.prompts import FramePrompts
from . import export, persist
from .render import render_frames

Point = tuple[int, float, float, bool]  # object id, x, y, positive
Box = tuple[int, float, float, float, float]  # object id, x0, y0, x1, y1


@dataclass(frozen=True)
class FrameDrawing:
    """What the renderer draws over one frame (arguments of ``render_frame`` after the frame itself)."""

    masks: dict[int, np.ndarray]  # object id -> H, W bool
    colors: dict[int, RGB]
    points: list[Point]
    boxes: list[Box]
    selected: int | None

    def args(self) -> tuple:
        return self.masks, self.colors, self.points, self.boxes, self.selected


def marks(on_frame: dict[int, FramePrompts]) -> tuple[list[Point], list[Box]]:
    """The clicks and boxes of a frame's prompts, as the renderer draws them."""
    points = [(obj, x, y, pos) for obj, p in on_frame.items() for x, y, pos in p.points]
    boxes = [(obj, *p.box) for obj, p in on_frame.items() if p.box is not None]
    return points, boxes


def frame_drawing(state: SessionState, frame: int, prompts: bool) -> FrameDrawing:
    """The masks of every object on ``frame`` and (``prompts``) their clicks and boxes (under the lock)."""
    colors = {info.id: info.color for info in state.objects}
    masks = {obj: e.mask(state.store.shape) for obj, e in state.store.entries(frame).items() if obj in colors}
    points, boxes = marks(state.table.on_frame(frame) if prompts else {})
    return FrameDrawing(masks, colors, points, boxes, state.selected_object())


def export_snapshot(
    state: SessionState, num_frames: int
) -> tuple[FrameMasksView, dict[int, str], dict[int, RGB]]:
    """Every mask (a frame -> masks view over a snapshot of the store), the names and the colours.

    Caller holds the lock; the view stays valid after it is released."""
    names = {info.id: info.name for info in state.objects}
    colors = {info.id: info.color for info in state.objects}
    return FrameMasksView(state.store.snapshot(), num_frames, state.store.shape), names, colors


def prompt_marks(state: SessionState) -> tuple[dict[int, list[Point]], dict[int, list[Box]]]:
    """The clicks and boxes of every prompted frame, frame -> list. Caller holds the lock."""
    points, boxes = {}, {}
    for frame in state.table.frames():
        points[frame], boxes[frame] = marks(state.table.on_frame(frame))
    return points, boxes


def export_pngs(state: SessionState, guard: SessionGuard, num_frames: int, out_dir: str | Path) -> list[Path]:
    """Per-object 0/255 PNG masks, ``out_dir/003_name/00012.png``, for every frame and object with masks.

    Returns the written files.
    """
    with guard.lock:
        view, names, _ = export_snapshot(state, num_frames)
    return export.export_object_pngs(view, out_dir, names)


def export_davis(
    state: SessionState, guard: SessionGuard, num_frames: int, size: tuple[int, int], out_dir: str | Path
) -> list[Path]:
    """One indexed PNG per frame (DAVIS palette); object i (in id order) has value i, background 0."""
    with guard.lock:
        view, names, _ = export_snapshot(state, num_frames)
    return export.export_davis_pngs(view, out_dir, num_frames, size, object_ids=list(names))


def export_coco(state: SessionState, guard: SessionGuard, media: Media, path: str | Path) -> Path:
    """COCO RLE JSON of every mask, with object names and colours (see ``export.export_coco_json``)."""
    num_frames = len(media.frames)
    with guard.lock:
        view, names, colors = export_snapshot(state, num_frames)
    size = media.frames.width, media.frames.height
    return export.export_coco_json(view, path, names, colors, size, fps=media.fps, num_frames=num_frames)


def export_video(
    state: SessionState,
    guard: SessionGuard,
    media: Media,
    frame_at: Callable[[int], np.ndarray],
    path: str | Path,
    display_size: tuple[int, int] | None,
    prompts: bool,
) -> Path:
    """An overlay video (``.mp4`` etc.) at the source fps with exactly one video frame per frame."""
    num_frames = len(media.frames)
    with guard.lock:
        view, _, colors = export_snapshot(state, num_frames)
        points, boxes = prompt_marks(state) if prompts else ({}, {})
    frames = render_frames(num_frames, frame_at, view, colors, points, boxes, display_size)
    return export.export_overlay_video(frames, path, media.fps)


def save(
    state: SessionState,
    guard: SessionGuard,
    media: Media,
    frame0: Callable[[], np.ndarray],
    settings: tuple[Limits, Any, bool],
    path: str | Path,
    portable: bool,
) -> Path:
    """Write the session file: source reference, limits, objects, the prompt log and every mask (not the
    undo history). ``settings``: the session's limits, predictor and corrections-as-conditioning choice.

    A session opened from frames in memory saves no source: pass the same frames to `Session.load`.
    ``portable``: name the source by its file name only (not its folder).
    """
    limits, predictor, corrections_as_conditioning = settings
    with guard.lock:
        if guard.propagating:
            raise SessionError("Tracking is running: wait for it to finish or cancel it, then save.")
        document = persist.to_document(
            state,
            media,
            frame0(),
            limits,
            persist.image_size_of(predictor),
            corrections_as_conditioning,
            portable,
        )
    return persist.write(document, Path(path))
