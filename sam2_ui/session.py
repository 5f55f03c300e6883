"""`Session`: the interaction engine every front end drives.

A session owns one opened video (or image), its objects, the prompts given on its frames, the masks shown
and exported, and the undo history. It drives a ``SAM2VideoPredictor`` through `Tracker`:

- the masks live in the session's own `MaskStore` (the source of truth for display and export);
- every predictor call is recorded in the prompt log (`prompts.py`); undo and redo move through the
  history (`history.py`) and restore the masks exactly, and the predictor's state is rebuilt from the log
  lazily, right before the next call that needs it;
- tracking runs stream `PropagationProgress` events and stop within one frame when `cancel` is called.

User mistakes raise `SessionError` and leave the session unchanged. Reads (masks, render, exports) may run
on a UI thread while a tracking run goes on in a worker thread; edits during a run raise `SessionError`.

Coordinates are frame pixels (x right, y down; the centre of pixel (i, j) is x = i, y = j), sizes are
(width, height), frame indices start at 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import VideoSourceError

from . import export, persist
from .checks import check_box, check_frame, check_index, check_point
from .colors import RGB
from .document import SessionState
from .errors import SessionError
from .history import Change
from .masks import PROPAGATION, FrameMasksView
from .media import Limits, Media, open_media
from .memory_view import MemoryView
from .objects import ObjectInfo
from .predictor import VideoPredictor
from .prompts import (
    Action,
    AddPoint,
    ClearFrame,
    ForgetObject,
    FramePrompts,
    Leg,
    PromptTable,
    Propagate,
    Reset,
    SetMask,
    SetPoints,
    read_only,
)
from .propagation import PropagationProgress, PropagationSummary, plan_legs
from .quality import DoubtRule, doubt_reasons, doubtful_frames
from .render import DisplayMapping, Layers, render_frame, render_layers
from .tracker import FrameResult, Tracker

RECENT_RUN_WEIGHT = 0.5
"""In `seconds_per_frame`, each tracking run counts this much less than the run after it."""


class Session:
    """One video (or image) being segmented. Create it with `Session.open` or `Session.load`."""

    def __init__(
        self, media: Media, predictor: VideoPredictor, limits: Limits, state_on_cpu: bool = False
    ) -> None:
        self._media = media
        self._predictor = predictor
        self.limits = limits
        self.messages: list[str] = list(media.messages)
        try:
            self._tracker = Tracker(predictor, media.frames, state_on_cpu)
        except (VideoSourceError, OSError) as error:
            media.frames.close()
            raise SessionError(f"Cannot read {media.description}: {error}") from error
        self._state = SessionState((media.frames.height, media.frames.width), limits.max_undo)
        self._lock = threading.RLock()  # guards the state above; held briefly, never during network work
        self._model_lock = threading.Lock()  # one predictor call (or tracked frame) at a time
        self._propagating = False
        self._closed = False
        self._cancel = threading.Event()
        self._last_run: PropagationSummary | None = None
        self._last_mapping: DisplayMapping | None = None
        self._timed_seconds = 0.0  # decayed sums over tracking runs, for seconds_per_frame
        self._timed_frames = 0.0
        self.doubt_rule = DoubtRule()
        """What `doubtful_frames` flags; replace it to change the thresholds."""

    # ============================================================================================ media
    @classmethod
    def open(
        cls,
        source: Any,
        predictor: VideoPredictor,
        limits: Limits | None = None,
        fps: float | None = None,
        state_on_cpu: bool = False,
    ) -> Session:
        """Open a video file, a folder of frames, an image, a T, H, W, 3 uint8 array or a list of frames.

        Arguments:
          source: a path (video file: mp4, mov, webm, mkv, avi; a folder of JPEG/PNG frames; one image file),
            an array (T, H, W, 3 frames, or H, W, 3 for one image), a list of frames or a PIL image.
          predictor: a ``SAM2VideoPredictor`` (``model.build_sam2_video_predictor``).
          limits: the budget (`Limits`); over it, frames are downscaled or the video is cut, with a message
            in `messages` (and a ``UserWarning``).
          fps: the frame rate, for sources that do not carry one (default 30) or to override it.
          state_on_cpu: keep the tracking state (stored masks, memories) on the CPU between calls
            (``offload_state_to_cpu``), e.g. where the GPU is lent per call as on Hugging Face ZeroGPU.
        Raises `SessionError` for a missing, unreadable or empty source.
        """
        limits = limits or Limits()
        return cls(open_media(source, limits, fps), predictor, limits, state_on_cpu)

    @property
    def num_frames(self) -> int:
        return len(self._media.frames)

    @property
    def fps(self) -> float:
        return self._media.fps

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames the session works on (after any downscaling)."""
        return self._media.frames.width, self._media.frames.height

    @property
    def original_size(self) -> tuple[int, int]:
        """(width, height) of the source before downscaling."""
        return self._media.original_size

    @property
    def is_image(self) -> bool:
        return self.num_frames == 1

    @property
    def source_path(self) -> Path | None:
        """The opened file or folder, or None for frames given in memory."""
        return self._media.path

    @property
    def predictor(self) -> VideoPredictor:
        return self._predictor

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as a read-only H, W, 3 uint8 RGB array, decoded on first use (bounded cache)."""
        index = self._check_frame(index)
        self._check_open()
        try:
            return self._media.frames.rgb(index)
        except VideoSourceError as error:
            raise SessionError(
                f"Cannot decode frame {index} of {self._media.description}: {error}"
            ) from error

    def close(self) -> None:
        """Stop any tracking run and release the frames, features and tracking state.

        Masks, prompts and objects stay readable; edits, tracking and frames are refused with a message.
        """
        self._cancel.set()
        with self._model_lock:  # not under a running predictor call
            self._closed = True
            self._tracker.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.size
        return (
            f"Session({self._media.description!r}, frames={self.num_frames}, size={w}x{h}, "
            f"objects={self._state.objects.ids})"
        )

    # ============================================================================================ objects
    @property
    def objects(self) -> list[ObjectInfo]:
        """The objects, by increasing id."""
        with self._lock:
            return list(self._state.objects)

    def object(self, obj: int) -> ObjectInfo:
        with self._lock:
            return self._state.objects.get(obj)

    @property
    def colors(self) -> dict[int, RGB]:
        with self._lock:
            return {info.id: info.color for info in self._state.objects}

    @property
    def names(self) -> dict[int, str]:
        with self._lock:
            return {info.id: info.name for info in self._state.objects}

    @property
    def selected(self) -> int | None:
        """The selected object (prompts go to it when no object is given), or None."""
        with self._lock:
            return self._state.selected if self._state.selected in self._state.objects else None

    def select_object(self, obj: int | None) -> None:
        """Select an object (None: none). Not an edit: it is not undone."""
        with self._lock:
            if obj is not None:
                self._state.objects.get(obj)
            self._state.selected = obj

    def add_object(self, name: str | None = None, select: bool = True) -> int:
        """Add an object and return its id (ids count up from 1 and are never reused)."""
        with self._edit("add object") as change:
            info = change.edit_objects(lambda objects: objects.add(name))
        if select:
            self.select_object(info.id)
        return info.id

    def rename_object(self, obj: int, name: str) -> None:
        with self._edit("rename object") as change:
            self._state.objects.get(obj)
            change.edit_objects(lambda objects: objects.rename(obj, name))

    def remove_object(self, obj: int) -> None:
        """Remove an object with its prompts and masks (undoable)."""
        with self._edit("remove object") as change:
            self._state.objects.get(obj)
            self._execute(change, ForgetObject(obj))
            change.edit_objects(lambda objects: objects.remove(obj))
            change.set_clock(obj, None)

    # ============================================================================================ prompts
    def add_point(
        self, frame: int, obj: int | None, x: float, y: float, positive: bool = True
    ) -> dict[int, np.ndarray]:
        """Click on a frame for an object: positive (part of it) or negative (not part of it).

        On a frame the object was tracked on, the click corrects the tracked mask, as in the video predictor.
        ``obj`` None means the selected object. Returns the frame's masks (object id -> H, W bool).
        """
        with self._edit("add point" if positive else "add negative point") as change:
            frame, obj = self._check_frame(frame), self._check_object(obj)
            x, y = check_point(x, y, self.size)
            self._execute(change, AddPoint(frame, obj, x, y, bool(positive)))
        return self.masks(frame)

    def add_box(
        self, frame: int, obj: int | None, x0: float, y0: float, x1: float, y1: float
    ) -> dict[int, np.ndarray]:
        """Give an object's box on a frame (replacing its earlier box there; its clicks there stay).

        Corners may come in any order; a box running past the frame's edge is clipped to it (a drag that
        overshoots), one entirely outside or without area raises `SessionError`. Returns the frame's masks.
        """
        with self._edit("add box") as change:
            frame, obj = self._check_frame(frame), self._check_object(obj)
            box = check_box(x0, y0, x1, y1, self.size)
            points = self._state.table.get(frame, obj).points
            self._execute(change, SetPoints(frame, obj, points, box))
        return self.masks(frame)

    def add_mask(self, frame: int, obj: int | None, mask: np.ndarray) -> dict[int, np.ndarray]:
        """Give an object's mask on a frame (an H, W array at the session size; nonzero = object).

        Replaces the object's clicks and box on that frame. Returns the frame's masks.
        """
        with self._edit("add mask") as change:
            frame, obj = self._check_frame(frame), self._check_object(obj)
            mask = np.asarray(mask)
            if mask.shape != self._state.store.shape:
                w, h = self.size
                raise ValueError(f"the mask is {mask.shape} (H, W) but the frames are {h, w}")
            if not mask.any():
                raise SessionError("The mask is empty: paint the object first.")
            self._execute(change, SetMask(frame, obj, read_only(mask != 0)))
        return self.masks(frame)

    def remove_point(self, frame: int, obj: int | None, index: int) -> dict[int, np.ndarray]:
        """Remove one click (``index`` in the order they were added on that frame; see `prompts`).

        The remaining clicks and box are given again, as a front end re-sends them; removing the last one
        clears the object's prompts on that frame (see `clear`). Returns the frame's masks.
        """
        with self._edit("remove point") as change:
            frame, obj = self._check_frame(frame), self._check_object(obj)
            prompts = self._state.table.get(frame, obj)
            index = check_index(index, "a point index")
            if not 0 <= index < len(prompts.points):
                raise SessionError(
                    f"Object {obj} has no point {index} on frame {frame} (it has {len(prompts.points)} "
                    "there): pick one of the points shown."
                )
            points = prompts.points[:index] + prompts.points[index + 1 :]
            if points or prompts.box is not None:
                self._execute(change, SetPoints(frame, obj, points, prompts.box))
            else:
                self._clear_frame_object(change, frame, obj)
        return self.masks(frame)

    def clear(self, frame: int | None = None, obj: int | None = None) -> None:
        """Remove prompts, and the masks they made: of one object on one frame, of every object on a frame
        (``obj`` None), of one object everywhere (``frame`` None), or everything (both None).

        Masks that tracking made elsewhere from the removed prompts become stale (see `stale_frames`); an
        object left without any prompt loses all its masks. Objects stay (see `remove_object`).
        """
        with self._edit("clear") as change:
            if frame is not None:
                frame = self._check_frame(frame)
            if obj is not None:
                self._state.objects.get(obj)
            if frame is None and obj is None:
                if self._state.table.objects() or self._state.store.keys():
                    self._execute(change, Reset())
            elif frame is None:
                if obj in self._state.table.objects() or self._state.store.keys(obj):
                    self._execute(change, ForgetObject(obj))
            else:
                targets = [obj] if obj is not None else list(self._state.table.on_frame(frame))
                for target in targets:
                    if (frame, target) in self._state.table:
                        self._clear_frame_object(change, frame, target)

    def _clear_frame_object(self, change: Change, frame: int, obj: int) -> None:
        if self._state.table.frames(obj) == [frame]:
            self._execute(change, ForgetObject(obj))  # no prompt left: nothing could track it
        else:
            self._execute(change, ClearFrame(frame, obj))

    def prompts(self, frame: int) -> dict[int, FramePrompts]:
        """The prompts on a frame: object id -> `FramePrompts` (points (x, y, positive), box, mask)."""
        frame = self._check_frame(frame)
        with self._lock:
            return self._state.table.on_frame(frame)

    def prompted_frames(self, obj: int | None = None) -> list[int]:
        """Frames holding prompts (of one object, or of any)."""
        with self._lock:
            return self._state.table.frames(obj)

    def find_point(
        self, frame: int, x: float, y: float, radius: float | None = None
    ) -> tuple[int, int] | None:
        """The click nearest (x, y) on a frame within ``radius`` frame pixels, as (object id, index).

        What a front end needs to delete a point by clicking it. The default radius is 2% of the shorter
        frame side (at least 3 pixels), about the size the markers are drawn at.
        """
        frame = self._check_frame(frame)
        if radius is None:
            radius = max(3.0, 0.02 * min(self.size))
        best, best_d = None, float(radius)
        with self._lock:
            for obj, prompts in self._state.table.on_frame(frame).items():
                for i, (px, py, _) in enumerate(prompts.points):
                    d = float(np.hypot(px - x, py - y))
                    if d <= best_d:
                        best, best_d = (obj, i), d
        return best

    @property
    def prompt_log(self) -> list[Action]:
        """Every predictor call in effect, oldest first (what `save` writes and replay runs)."""
        with self._lock:
            return self._state.history.log()

    # ============================================================================================ masks
    def masks(self, frame: int) -> dict[int, np.ndarray]:
        """The masks on a frame: object id -> H, W bool (new arrays).

        Objects never segmented on the frame are absent; one tracked there but not found has an empty mask.
        """
        frame = self._check_frame(frame)
        with self._lock:
            entries = self._state.store.entries(frame)
        return {obj: entry.mask(self._state.store.shape) for obj, entry in entries.items()}

    def mask(self, frame: int, obj: int) -> np.ndarray | None:
        frame = self._check_frame(frame)
        with self._lock:
            entry = self._state.store.get(frame, obj)
        return None if entry is None else entry.mask(self._state.store.shape)

    def tracked_frames(self, obj: int | None = None) -> list[int]:
        """Frames with a mask (of one object, or of any)."""
        with self._lock:
            return sorted({f for f, _ in self._state.store.keys(obj)})

    def stale_frames(self, obj: int | None = None) -> list[int]:
        """Frames with a tracked mask computed before a later change to its object's prompts.

        Tracking again over them (`propagate`) refreshes them. Frames with prompts are never stale: their
        masks come from those prompts.
        """
        with self._lock:
            return sorted(
                {
                    frame
                    for (frame, o), entry in self._state.store.items()
                    if (obj is None or o == obj)
                    and entry.origin == PROPAGATION
                    and entry.clock < self._state.prompt_clocks.get(o, -1)
                }
            )

    def doubtful_frames(self, obj: int | None = None) -> list[int]:
        """Frames where a mask of one object (or of any) deserves a second look, by `doubt_rule`.

        A mask is doubtful where the model rated it poorly, was unsure the object is there, or where it
        changed size suddenly from the object's previous mask (see `quality.DoubtRule`). Frames with the
        object's prompts are never doubtful: the user decided them.
        """
        with self._lock:
            objects = self._state.objects.ids if obj is None else [self._state.objects.get(obj).id]
            frames: set[int] = set()
            for o in objects:
                entries = self._state.store.of_object(o)
                frames.update(doubtful_frames(entries, set(self._state.table.frames(o)), self.doubt_rule))
        return sorted(frames)

    def doubt_reasons(self, obj: int) -> dict[int, str]:
        """One object's doubtful frames, each with a sentence saying why (see `doubtful_frames`)."""
        with self._lock:
            obj = self._state.objects.get(obj).id
            entries = self._state.store.of_object(obj)
            return doubt_reasons(entries, set(self._state.table.frames(obj)), self.doubt_rule)

    def mask_quality(self, frame: int) -> dict[int, tuple[float | None, float | None, int]]:
        """Object id -> (predicted IoU, object score logit, area in pixels) of each mask on a frame.

        The IoU and score are what the model said of the mask (None when unknown, as for masks loaded from
        a session file saved before they were kept); a score > 0 means the model judged the object present.
        """
        frame = self._check_frame(frame)
        with self._lock:
            entries = self._state.store.entries(frame)
        return {obj: (e.iou, e.score, e.area) for obj, e in entries.items()}

    def memory_view(self, frame: int, obj: int | None = None) -> MemoryView:
        """Which frames ``obj``'s (default: the selected object's) memory bank gives ``frame`` and its object
        score on every frame, read from the predictor's state and the stored masks (see `MemoryView`).

        After undo, redo or loading, the predictor's state is rebuilt on the next edit; until then the view
        says so instead of showing a memory that no longer matches the prompts.
        """
        frame = self._check_frame(frame)
        with self._lock:
            obj = self._check_object(obj)
            name = self._state.objects.get(obj).name
            scores = [None] * self.num_frames
            for f, entry in self._state.store.of_object(obj).items():
                scores[f] = entry.score
            prompted = (frame, obj) in self._state.table
        layout, note = None, ""
        with self._model_lock:  # between two tracked frames during a run
            if self._closed:
                note = "This session is closed: its memory was released."
            elif self._propagating or self._tracker.reflects(self._state.history.log()):
                layout = self._tracker.memory_layout(frame, obj)
                if layout is None:
                    note = f"{name} has no prompt yet: click on it to give the model its first memory."
            else:
                note = "The memory bank is rebuilt from the prompts at the next click or tracking run."
        return MemoryView(
            frame=frame,
            obj=obj,
            name=name,
            num_frames=self.num_frames,
            conditioning=tuple(layout.conditioning) if layout else (),
            recent=tuple(layout.recent) if layout else (),
            pointers=tuple(layout.pointers) if layout else (),
            reverse=bool(layout.reverse) if layout else False,
            prompted=prompted,
            scores=tuple(scores),
            note=note,
        )

    # ============================================================================================ history
    @property
    def can_undo(self) -> bool:
        with self._lock:
            return self._state.history.can_undo

    @property
    def can_redo(self) -> bool:
        with self._lock:
            return self._state.history.can_redo

    def undo(self) -> str:
        """Undo the last edit; returns its label ("add point", "propagate forward", ...)."""
        with self._edit(None):
            step = self._state.history.undo()
            if step is None:
                raise SessionError("Nothing to undo.")
            self._state.restore(step, after=False)
            return step.label

    def redo(self) -> str:
        """Redo the last undone edit; returns its label."""
        with self._edit(None):
            step = self._state.history.redo()
            if step is None:
                raise SessionError("Nothing to redo.")
            self._state.restore(step, after=True)
            return step.label

    # ============================================================================================ tracking
    def propagate(
        self, direction: str = "forward", start: int | None = None, end: int | tuple[int, int] | None = None
    ) -> Iterator[PropagationProgress]:
        """Track every prompted object through the video; a generator of `PropagationProgress`, one per frame.

        Arguments:
          direction: "forward", "backward" or "both" (forward, then backward from the same start).
          start: the frame to start from. Default: the first prompted frame ("forward", "both") or the last
            one ("backward").
          end: where to stop, inclusive: a frame >= start for "forward" (default: the last), <= start for
            "backward" (default: 0), a (first, last) pair around start for "both" (default: the whole video).

        Masks are stored as frames are done, so a UI thread sees them stream in. The whole run is one undo
        step. `cancel` (from any thread) ends it before the next frame, keeping the frames done; so does
        closing the generator. Bad arguments raise `SessionError` here, before anything runs.
        """
        with self._lock:
            self._check_idle()
            plan_legs(direction, start, end, self.num_frames, self._state.table.frames())
        self._cancel.clear()
        return self._propagation(direction, start, end)

    def cancel(self) -> bool:
        """Stop the running tracking run before its next frame (safe from any thread).

        Returns whether a run was going on. A run created but not yet started stops at once when started.
        """
        self._cancel.set()
        with self._lock:
            return self._propagating

    @property
    def is_propagating(self) -> bool:
        with self._lock:
            return self._propagating

    @property
    def seconds_per_frame(self) -> float | None:
        """Measured seconds per tracked frame over this session's tracking runs, recent runs weighted more
        (each run weighs `RECENT_RUN_WEIGHT` as much as the one after it); None before any frame was tracked.

        Counts the model's work per frame, not the time a consumer of `propagate` spends between frames.
        """
        with self._lock:
            if self._timed_frames <= 0:
                return None
            return self._timed_seconds / self._timed_frames

    def estimate_seconds(
        self, direction: str = "forward", start: int | None = None, end: int | tuple[int, int] | None = None
    ) -> tuple[int, float | None]:
        """How many frames `propagate` with these arguments would track, and about how many seconds it would
        take (None until `seconds_per_frame` is measured). Raises `SessionError` as `propagate` would."""
        with self._lock:
            _, legs = plan_legs(direction, start, end, self.num_frames, self._state.table.frames())
        frames = sum(leg.count for leg in legs)
        per_frame = self.seconds_per_frame
        return frames, None if per_frame is None else frames * per_frame

    def _time_run(self, seconds: float, frames: int) -> None:
        if frames:
            self._timed_seconds = self._timed_seconds * RECENT_RUN_WEIGHT + seconds
            self._timed_frames = self._timed_frames * RECENT_RUN_WEIGHT + frames

    @property
    def last_propagation(self) -> PropagationSummary | None:
        """How the last tracking run ended (frames done, planned, cancelled, seconds)."""
        with self._lock:
            return self._last_run

    def _propagation(self, direction: str, start: int | None, end: Any) -> Iterator[PropagationProgress]:
        with self._model_lock:
            with self._lock:
                self._check_idle()
                start, legs = plan_legs(direction, start, end, self.num_frames, self._state.table.frames())
                self._propagating = True
                clock = self._state.tick()
                change = self._state.change(f"propagate {direction}")
            try:
                self._sync()
            except BaseException:
                with self._lock:
                    self._propagating = False
                raise
        total = sum(leg.count for leg in legs)
        done_legs: list[Leg] = []
        done, began, cancelled = 0, time.perf_counter(), False
        working = 0.0  # seconds spent tracking, not waiting for the consumer
        try:
            for leg in legs:
                steps = self._tracker.leg(leg)
                count = 0
                try:
                    while count < leg.count:
                        if self._cancel.is_set():
                            cancelled = True
                            break
                        step_began = time.perf_counter()
                        with self._model_lock:
                            frame, masks, scores = self._next_frame(steps, done)
                        count += 1
                        done += 1
                        with self._lock:
                            self._state.put_tracked(change, frame, masks, scores, clock)
                            shown = self._state.store.entries(frame)
                        working += time.perf_counter() - step_began
                        elapsed = time.perf_counter() - began
                        yield PropagationProgress(
                            frame_index=frame,
                            done=done,
                            total=total,
                            elapsed_s=elapsed,
                            eta_s=elapsed / done * (total - done),
                            masks={o: e.mask(self._state.store.shape) for o, e in shown.items()},
                            direction="backward" if leg.reverse else "forward",
                        )
                finally:
                    steps.close()
                    if count:
                        done_legs.append(Leg(leg.start, count, leg.reverse))
                if cancelled:
                    break
        except GeneratorExit:
            cancelled = True
            raise
        finally:
            with self._lock:
                if done_legs:
                    action = Propagate(tuple(done_legs))
                    self._tracker.record(action)
                    change.actions.append(action)
                    self._state.history.push(change.step())
                self._last_run = PropagationSummary(
                    direction, start, done, total, cancelled, time.perf_counter() - began
                )
                self._time_run(working, done)
                self._propagating = False
                self._cancel.clear()

    def _next_frame(self, steps: Iterator[FrameResult], done: int) -> FrameResult:
        try:
            return next(steps)
        except VideoSourceError as error:  # a damaged file: frames after some point cannot be decoded
            self._tracker.invalidate()
            raise SessionError(
                f"Tracking stopped: {error}. The video file looks damaged there; the frames tracked so far "
                "are kept. Track up to the frame before, or re-encode the video."
            ) from error
        except RuntimeError as error:
            self._tracker.invalidate()
            if done == 0 and "prompt" in str(error):
                raise SessionError(
                    f"Cannot track: {error}. Give each object a point, box or mask on a frame it was not "
                    "tracked on."
                ) from error
            raise
        except BaseException:
            self._tracker.invalidate()
            raise

    # ============================================================================================ images
    def segment_everything(self, frame: int = 0, **amg_kwargs: Any) -> list[int]:
        """Find every object on a frame with the automatic mask generator; each mask becomes a new object.

        Each mask is given to the predictor as that object's mask prompt, so it can be refined with clicks,
        tracked through a video, and undone (the whole call is one undo step). Keyword arguments go to
        ``SAM2AutomaticMaskGenerator`` (``points_per_side``, ``pred_iou_thresh``, ...). Masks are added
        largest first. Returns the new object ids (empty, with a message, if nothing was found).
        """
        from model import SAM2AutomaticMaskGenerator

        if amg_kwargs.get("output_mode", "binary_mask") != "binary_mask":
            raise ValueError("segment_everything needs output_mode='binary_mask'")
        frame = self._check_frame(frame)
        generator = SAM2AutomaticMaskGenerator(self._predictor.model, **amg_kwargs)
        with self._edit("segment everything") as change:
            records = generator.generate(np.array(self.frame(frame)))  # a writable copy for torch
            records.sort(key=lambda r: -int(r["area"]))
            new_ids = []
            for record in records:
                info = change.edit_objects(lambda objects: objects.add(None))
                new_ids.append(info.id)
                self._execute(change, SetMask(frame, info.id, read_only(record["segmentation"])))
        if not new_ids:
            self.messages.append(
                f"No objects were found on frame {frame}; try a lower pred_iou_thresh or "
                "stability_score_thresh, or more points_per_side."
            )
        return new_ids

    # ============================================================================================ rendering
    def render(
        self,
        frame: int,
        display_size: tuple[int, int] | None = None,
        prompts: bool = True,
        alpha: float = 0.45,
        outline: bool = True,
    ) -> tuple[np.ndarray, DisplayMapping]:
        """The frame with each object's mask as a semi-transparent overlay with an outline, and (``prompts``)
        its clicks and boxes, resized to fit ``display_size`` (max width, max height; never enlarged).

        Returns the h, w, 3 uint8 image and the `DisplayMapping` from its pixels to the frame's (kept for
        `display_to_frame`).
        """
        image, mapping = render_frame(*self._render_inputs(frame, prompts), display_size, alpha, outline)
        with self._lock:
            self._last_mapping = mapping
        return image, mapping

    def render_layers(
        self,
        frame: int,
        display_size: tuple[int, int] | None = None,
        prompts: bool = True,
        alpha: float = 0.45,
        outline: bool = True,
    ) -> Layers:
        """`render` as three layers (the frame, the masks as RGBA, the prompt markers as RGBA), for a canvas
        that redraws only the layers that changed. Arguments as for `render`."""
        layers = render_layers(*self._render_inputs(frame, prompts), display_size, alpha, outline)
        with self._lock:
            self._last_mapping = layers.mapping
        return layers

    def _render_inputs(self, frame: int, prompts: bool) -> tuple:
        """What the renderer draws for a frame: (rgb, masks, colors, points, boxes, selected)."""
        frame = self._check_frame(frame)
        rgb = self.frame(frame)
        with self._lock:
            entries = self._state.store.entries(frame)
            colors = {info.id: info.color for info in self._state.objects}
            on_frame = self._state.table.on_frame(frame) if prompts else {}
            selected = self.selected
        masks = {obj: e.mask(self._state.store.shape) for obj, e in entries.items() if obj in colors}
        points = [(obj, x, y, pos) for obj, p in on_frame.items() for x, y, pos in p.points]
        boxes = [(obj, *p.box) for obj, p in on_frame.items() if p.box is not None]
        return rgb, masks, colors, points, boxes, selected

    def display_to_frame(
        self, x: float, y: float, display_size: tuple[int, int] | None = None
    ) -> tuple[float, float]:
        """Display pixel (x, y) -> frame pixel coordinates.

        ``display_size`` is the ``display_size`` the image was rendered with; None uses the last `render`'s
        mapping (or the frame size if nothing was rendered yet). Check the result with `add_point`, which
        refuses clicks outside the frame.
        """
        if display_size is not None:
            mapping = DisplayMapping.fit(self.size, display_size)
        else:
            with self._lock:
                mapping = self._last_mapping or DisplayMapping.fit(self.size)
        return mapping.to_frame(x, y)

    # ============================================================================================ exports
    def export_pngs(self, out_dir: str | Path) -> list[Path]:
        """Per-object 0/255 PNG masks, ``out_dir/003_name/00012.png``, for every frame and object with masks.

        Returns the written files.
        """
        view, names, _ = self._export_view()
        return export.export_object_pngs(view, out_dir, names)

    def export_davis(self, out_dir: str | Path) -> list[Path]:
        """One indexed PNG per frame (DAVIS palette); object i (in id order) has value i, background 0."""
        view, names, _ = self._export_view()
        return export.export_davis_pngs(view, out_dir, self.num_frames, self.size, object_ids=list(names))

    def export_coco(self, path: str | Path) -> Path:
        """COCO RLE JSON of every mask, with object names and colours (see ``export.export_coco_json``)."""
        view, names, colors = self._export_view()
        return export.export_coco_json(
            view, path, names, colors, self.size, fps=self.fps, num_frames=self.num_frames
        )

    def export_video(
        self, path: str | Path, display_size: tuple[int, int] | None = None, prompts: bool = False
    ) -> Path:
        """An overlay video (``.mp4`` etc.) at the source fps with exactly one video frame per frame."""
        view, names, colors = self._export_view()
        with self._lock:
            table = self._state.table
            on_frames = {f: table.on_frame(f) for f in table.frames()} if prompts else {}

        def frames() -> Iterator[np.ndarray]:
            for index in range(self.num_frames):
                on_frame = on_frames.get(index, {})
                points = [(o, x, y, pos) for o, p in on_frame.items() for x, y, pos in p.points]
                boxes = [(o, *p.box) for o, p in on_frame.items() if p.box is not None]
                image, _ = render_frame(
                    self.frame(index), view[index], colors, points, boxes, None, display_size
                )
                yield image

        return export.export_overlay_video(frames(), path, self.fps)

    def _export_view(self) -> tuple[FrameMasksView, dict[int, str], dict[int, RGB]]:
        with self._lock:
            snapshot = self._state.store.snapshot()
            names = {info.id: info.name for info in self._state.objects}
            colors = {info.id: info.color for info in self._state.objects}
        return FrameMasksView(snapshot, self.num_frames, self._state.store.shape), names, colors

    # ============================================================================================ save / load
    def save(self, path: str | Path, portable: bool = False) -> Path:
        """Write the session as JSON: source reference, limits, objects, the prompt log, and every mask.

        The undo history is not saved. A session opened from frames in memory saves no source: pass the
        same frames to `load`. ``portable``: name the source by its file name only (not its folder).
        """
        with self._lock:
            if self._propagating:
                raise SessionError("Tracking is running: wait for it to finish or cancel it, then save.")
            document = persist.to_document(
                self._state,
                self._media,
                self.frame(0),
                self.limits,
                persist.image_size_of(self._predictor),
                portable,
            )
        return persist.write(document, Path(path))

    @classmethod
    def load(
        cls,
        path: str | Path,
        predictor: VideoPredictor,
        source: Any = None,
        replay: bool = False,
        state_on_cpu: bool = False,
        limits: Limits | None = None,
    ) -> Session:
        """Restore a session written by `save`: same objects, prompts, masks and stale frames.

        Arguments:
          source: the video, if not at the saved path (or if the session was made from frames in memory).
            It must have the same frames as the saved one.
          replay: recompute every mask by replaying the prompt log through ``predictor`` instead of reading
            the saved masks (slower; the same model gives identical masks).
          state_on_cpu: as for `open`.
          limits: open the video within these instead of the limits saved in the file (a server keeps its
            own); the frames must still come out as they were saved.
        A damaged or forged file (frames, objects or mask sizes the video cannot have) raises `SessionError`.
        The predictor's state is rebuilt from the prompt log before the first new prompt either way.
        """
        path = Path(path)
        saved = persist.read(path, source, replay, limits)
        session = cls.open(
            saved.source, predictor, limits=saved.limits, fps=saved.fps, state_on_cpu=state_on_cpu
        )
        try:
            persist.check_same_video(session._media, session.frame(0), saved.video, path)
            current = persist.image_size_of(predictor)
            if saved.image_size is not None and saved.image_size != current:
                session.messages.append(
                    f"This session was saved with a model of image size {saved.image_size} and is loaded "
                    f"with {current}: saved masks are kept, but new prompts and tracking use the new model."
                )
            with session._lock:
                session._state.install(saved.document, with_masks=saved.document.entries is not None)
            if saved.document.entries is None:
                session._replay(saved.document.log)
        except BaseException:
            session.close()
            raise
        return session

    # ============================================================================================ internals
    @contextmanager
    def _edit(self, label: str | None) -> Iterator[Change]:
        """One edit: serialised with other edits, refused during tracking, undone if it fails, recorded.

        ``label`` None: the caller manages history itself (undo, redo).
        """
        with self._model_lock:
            with self._lock:
                self._check_idle()
                change = self._state.change(label or "")
            try:
                yield change
            except BaseException:
                with self._lock:
                    change.rollback()
                    self._state.table = PromptTable.from_log(self._state.history.log())
                raise
            if label is not None:
                with self._lock:
                    step = change.step()
                    if not step.empty:
                        self._state.history.push(step)

    def _check_open(self) -> None:
        if self._closed:
            raise SessionError(
                "This session was closed (Session.close): its masks can still be read and saved, but to "
                "click, track or see frames again open the media in a new session."
            )

    def _check_idle(self) -> None:
        self._check_open()
        if self._propagating:
            raise SessionError("Tracking is running: wait for it to finish or cancel it, then try again.")

    def _sync(self) -> None:
        """Bring the predictor's state up to the prompt log (after undo, redo, load or a failed call)."""
        self._tracker.sync(self._state.history.log())

    def _execute(self, change: Change, action: Action) -> None:
        """Run a predictor action (not `Propagate`) and apply its effect on masks, prompts and clocks.

        Runs inside `_edit` (model lock held); the same code rebuilds masks when a saved log is replayed.
        """
        try:
            self._tracker.sync(self._state.history.log() + change.actions)
            result = self._tracker.run(action)
        except VideoSourceError as error:
            raise SessionError(f"Cannot decode this frame of {self._media.description}: {error}") from error
        with self._lock:
            clock = self._state.tick()
            self._state.apply(change, action, result, clock, self._predictor.non_overlap_masks)
            change.actions.append(action)

    def _check_frame(self, frame: int) -> int:
        return check_frame(frame, self.num_frames)

    def _check_object(self, obj: int | None) -> int:
        if obj is None:
            obj = self.selected
            if obj is None:
                raise SessionError("No object is selected: add or select an object first.")
        return self._state.objects.get(obj).id

    def _replay(self, log: list[Action]) -> None:
        """Run a prompt log from the start, rebuilding masks and clocks (one clock tick per action)."""
        with self._model_lock:
            change = self._state.change("replay")
            for action in log:
                clock = self._state.tick()
                if isinstance(action, Propagate):
                    for frame, masks, scores in self._tracker.replay_propagation(action):
                        with self._lock:
                            self._state.put_tracked(change, frame, masks, scores, clock)
                else:
                    result = self._tracker.run(action)
                    with self._lock:
                        self._state.apply(change, action, result, clock, self._predictor.non_overlap_masks)
            with self._lock:
                self._state.rebuild_from(log)
