"""`Session`: the interaction engine every front end drives.

A session owns one opened video (or image), its objects, the prompts given on its frames, the masks shown
and exported, and the undo history. It drives a ``SAM2VideoPredictor`` through an executor:

- the masks live in the session's own `MaskStore` (the source of truth for display and export);
- every model call goes through the executor (`executor.py`) with the prompt log it builds on: `Tracker` in
  this process by default, or a worker process (a ZeroGPU Space) that returns plain data;
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import VideoSourceError
from model.loading.precision import Precision, resolve_precision

from .checks import check_box, check_frame, check_index, check_point
from .colors import RGB
from .document import SessionState
from .errors import SessionError
from .executor import ExecutorFactory, SessionModel
from .history import Change
from .media import Limits, Media, open_media, plain_words
from .objects import ObjectInfo
from .predictor import VideoPredictor, predictor_device
from .prompts import (
    Action,
    AddPoint,
    ClearFrame,
    ForgetObject,
    PromptTable,
    Reset,
    SetMask,
    SetPoints,
    read_only,
)
from .propagation import PropagationSummary
from .quality import DoubtRule
from .render import DisplayMapping
from .session_output import SessionOutput
from .session_queries import SessionQueries
from .session_tracking import TrackingRuns
from .tracker import Tracker


class Session(SessionQueries, TrackingRuns, SessionOutput):
    """One video (or image) being segmented. Create it with `Session.open` or `Session.load`."""

    def __init__(
        self,
        media: Media,
        predictor: VideoPredictor,
        limits: Limits,
        state_on_cpu: bool = False,
        precision: Precision = "fp32",
        executor: ExecutorFactory | None = None,
        corrections_as_conditioning: bool = True,
    ) -> None:
        self._media = media
        self._predictor = predictor
        self.limits = limits
        self.messages: list[str] = list(media.messages)
        self._corrections_as_conditioning = bool(corrections_as_conditioning)
        try:
            model = SessionModel(predictor, media, state_on_cpu, precision, self._corrections_as_conditioning)
            self._executor = (executor or Tracker.for_session)(model)
        except (VideoSourceError, OSError) as error:
            media.frames.close()
            raise SessionError(f"Cannot read {media.description}: {plain_words(str(error))}.") from error
        except BaseException:
            media.frames.close()
            raise
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
        precision: str = "auto",
        executor: ExecutorFactory | None = None,
        corrections_as_conditioning: bool = True,
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
          precision: "auto" (bf16 autocast where the predictor's device has fast bf16, else fp32; the
            ``SAM2_UI_PRECISION`` environment variable replaces "auto"), "fp32" or "bf16" (see `precision`).
          executor: where model calls run (see `executor.py`): None runs them in this process; on a ZeroGPU
            Space, ``WorkerExecutors`` runs each in a forked GPU worker.
          corrections_as_conditioning: a click, box or mask on a frame the object was already tracked on (a
            correction) becomes a conditioning frame, like the object's first prompt, so tracking again in
            any direction keeps the corrected mask and carries it on (SAM 2 was trained this way: the
            official training sets ``add_all_frames_to_correct_as_cond``). False keeps the official
            predictor's default: a correction only changes its own frame until the next tracking run over
            it computes that frame again from memory (`replaced_prompt_frames` then lists it). The
            predictor's own setting is left as it is; an official predictor must have been built with the
            same value.
        Raises `SessionError` for a missing, unreadable or empty source, ``ValueError`` for an unknown
        precision or "bf16" on a device without fast bf16.
        """
        limits = limits or Limits()
        precision = resolve_precision(precision, predictor_device(predictor))
        return cls(
            open_media(source, limits, fps),
            predictor,
            limits,
            state_on_cpu,
            precision,
            executor,
            corrections_as_conditioning,
        )

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

    @property
    def corrections_as_conditioning(self) -> bool:
        """Whether a correction on a tracked frame becomes a conditioning frame (see `open`)."""
        return self._corrections_as_conditioning

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
            self._executor.close()

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

    def _execute(self, change: Change, *actions: Action) -> None:
        """Run predictor actions (not `Propagate`) in one model call and apply each one's effect on masks,
        prompts and clocks (one clock tick per action).

        Runs inside `_edit` (model lock held).
        """
        try:
            results = self._executor.run(self._state.history.log() + change.actions, actions)
        except VideoSourceError as error:
            raise SessionError(f"Cannot decode this frame of {self._media.description}: {error}") from error
        with self._lock:
            for action, result in zip(actions, results):
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
