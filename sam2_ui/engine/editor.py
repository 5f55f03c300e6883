"""`Editor`: every change a person makes to a session's document, as actions run through the model.

An edit is serialised with other edits and model calls, refused while tracking runs, rolled back if it fails
and recorded as one undo step (`edit`). Each predictor action runs through the executor and its result is
folded into the document (`execute`); a prompt log can be run again from the start (`replay`). `Session`
offers these as its public API and documents them there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from model.errors import VideoSourceError

from .checks import check_box, check_frame, check_index, check_point
from .document import SessionState
from .errors import SessionError
from .executor import ModelExecutor
from .guard import SessionGuard
from .history import Change
from .media import Media
from .prompts import (
    Action,
    AddPoint,
    ClearFrame,
    ForgetObject,
    PromptTable,
    Propagate,
    Reset,
    SetMask,
    SetPoints,
    read_only,
)


class Editor:
    """Runs a session's edits: objects, prompts, clearing, undo and redo, "segment everything", replay."""

    def __init__(
        self,
        state: SessionState,
        guard: SessionGuard,
        executor: ModelExecutor,
        media: Media,
        non_overlap: bool,
        messages: list[str],
    ) -> None:
        self._state = state
        self._guard = guard
        self._executor = executor
        self._media = media
        self._non_overlap = non_overlap  # the predictor gives each pixel to one object
        self._messages = messages  # the session's messages for people

    # =========================================================================================== checks
    def check_frame(self, frame: int) -> int:
        return check_frame(frame, len(self._media.frames))

    def check_object(self, obj: int | None) -> int:
        """``obj``, or the selected object for None, checked to exist."""
        with self._guard.lock:
            if obj is None:
                obj = self._state.selected_object()
                if obj is None:
                    raise SessionError("No object is selected: add or select an object first.")
            return self._state.objects.get(obj).id

    # =========================================================================================== objects
    def select_object(self, obj: int | None) -> None:
        with self._guard.lock:
            if obj is not None:
                self._state.objects.get(obj)
            self._state.selected = obj

    def add_object(self, name: str | None, select: bool) -> int:
        with self.edit("add object") as change:
            info = change.edit_objects(lambda objects: objects.add(name))
        if select:
            self.select_object(info.id)
        return info.id

    def rename_object(self, obj: int, name: str) -> None:
        with self.edit("rename object") as change:
            self._state.objects.get(obj)
            change.edit_objects(lambda objects: objects.rename(obj, name))

    def remove_object(self, obj: int) -> None:
        with self.edit("remove object") as change:
            self._state.objects.get(obj)
            self.execute(change, ForgetObject(obj))
            change.edit_objects(lambda objects: objects.remove(obj))
            change.set_clock(obj, None)

    # =========================================================================================== prompts
    def add_point(self, frame: int, obj: int | None, x: float, y: float, positive: bool) -> int:
        """Returns the frame the point went to (the caller reads its masks)."""
        with self.edit("add point" if positive else "add negative point") as change:
            frame, obj = self.check_frame(frame), self.check_object(obj)
            x, y = check_point(x, y, self._size())
            self.execute(change, AddPoint(frame, obj, x, y, bool(positive)))
        return frame

    def add_box(self, frame: int, obj: int | None, corners: tuple[float, float, float, float]) -> int:
        with self.edit("add box") as change:
            frame, obj = self.check_frame(frame), self.check_object(obj)
            box = check_box(*corners, self._size())
            points = self._state.table.get(frame, obj).points
            self.execute(change, SetPoints(frame, obj, points, box))
        return frame

    def add_mask(self, frame: int, obj: int | None, mask: np.ndarray) -> int:
        with self.edit("add mask") as change:
            frame, obj = self.check_frame(frame), self.check_object(obj)
            mask = np.asarray(mask)
            if mask.shape != self._state.store.shape:
                w, h = self._size()
                raise ValueError(f"the mask is {mask.shape} (H, W) but the frames are {h, w}")
            if not mask.any():
                raise SessionError("The mask is empty: paint the object first.")
            self.execute(change, SetMask(frame, obj, read_only(mask != 0)))
        return frame

    def remove_point(self, frame: int, obj: int | None, index: int) -> int:
        """Remove one click (``index`` in the order they were added on that frame; see `prompts`).

        The remaining clicks and box are given again, as a front end re-sends them; removing the last one
        clears the object's prompts on that frame (see `clear`). Returns the frame's masks.
        """
        with self.edit("remove point") as change:
            frame, obj = self.check_frame(frame), self.check_object(obj)
            prompts = self._state.table.get(frame, obj)
            index = check_index(index, "a point index")
            if not 0 <= index < len(prompts.points):
                raise SessionError(
                    f"Object {obj} has no point {index} on frame {frame} (it has {len(prompts.points)} "
                    "there): pick one of the points shown."
                )
            points = prompts.points[:index] + prompts.points[index + 1 :]
            if points or prompts.box is not None:
                self.execute(change, SetPoints(frame, obj, points, prompts.box))
            else:
                self._clear_frame_object(change, frame, obj)
        return frame

    def clear(self, frame: int | None, obj: int | None) -> None:
        """Remove prompts, and the masks they made: of one object on one frame, of every object on a frame
        (``obj`` None), of one object everywhere (``frame`` None), or everything (both None).

        Masks that tracking made elsewhere from the removed prompts become stale (see `stale_frames`); an
        object left without any prompt loses all its masks. Objects stay (see `remove_object`).
        """
        with self.edit("clear") as change:
            if frame is not None:
                frame = self.check_frame(frame)
            if obj is not None:
                self._state.objects.get(obj)
            table, store = self._state.table, self._state.store
            if frame is None and obj is None:
                if table.objects() or store.keys():
                    self.execute(change, Reset())
            elif frame is None:
                if obj in table.objects() or store.keys(obj):
                    self.execute(change, ForgetObject(obj))
            else:
                for target in [obj] if obj is not None else list(table.on_frame(frame)):
                    if (frame, target) in table:
                        self._clear_frame_object(change, frame, target)

    def _clear_frame_object(self, change: Change, frame: int, obj: int) -> None:
        if self._state.table.frames(obj) == [frame]:
            self.execute(change, ForgetObject(obj))  # no prompt left: nothing could track it
        else:
            self.execute(change, ClearFrame(frame, obj))

    def segment_everything(self, frame: int, amg_kwargs: dict[str, Any]) -> list[int]:
        """Find every object on a frame with the automatic mask generator; each mask becomes a new object.

        Each mask is given to the predictor as that object's mask prompt, so it can be refined with clicks,
        tracked through a video, and undone (the whole call is one undo step). Keyword arguments go to
        ``SAM2AutomaticMaskGenerator`` (``points_per_side``, ``pred_iou_thresh``, ...). Masks are added
        largest first. Returns the new object ids (empty, with a message, if nothing was found).
        """
        if amg_kwargs.get("output_mode", "binary_mask") != "binary_mask":
            raise ValueError("segment_everything needs output_mode='binary_mask'")
        frame = self.check_frame(frame)
        with self.edit("segment everything") as change:
            try:
                found = self._executor.segment(frame, amg_kwargs)
            except VideoSourceError as error:
                raise SessionError(
                    f"Cannot decode frame {frame} of {self._media.description}: {error}"
                ) from error
            found.sort(key=lambda f: -f.area)
            new_ids, prompts = [], []
            for record in found:
                info = change.edit_objects(lambda objects: objects.add(None))
                new_ids.append(info.id)
                prompts.append(SetMask(frame, info.id, read_only(record.mask)))
            if prompts:
                self.execute(change, *prompts)  # one model call for all of them
        if not new_ids:
            self._messages.append(
                f"No objects were found on frame {frame}; try a lower pred_iou_thresh or "
                "stability_score_thresh, or more points_per_side."
            )
        return new_ids

    # =========================================================================================== history
    def undo(self) -> str:
        with self.edit(None):
            step = self._state.history.undo()
            if step is None:
                raise SessionError("Nothing to undo.")
            self._state.restore(step, after=False)
            return step.label

    def redo(self) -> str:
        with self.edit(None):
            step = self._state.history.redo()
            if step is None:
                raise SessionError("Nothing to redo.")
            self._state.restore(step, after=True)
            return step.label

    # ========================================================================================= machinery
    @contextmanager
    def edit(self, label: str | None) -> Iterator[Change]:
        """One edit: serialised with other edits, refused during tracking, undone if it fails, recorded.

        ``label`` None: the caller manages history itself (undo, redo).
        """
        with self._guard.model_lock:
            with self._guard.lock:
                self._guard.check_idle()
                change = self._state.change(label or "")
            try:
                yield change
            except BaseException:
                with self._guard.lock:
                    change.rollback()
                    self._state.table = PromptTable.from_log(self._state.history.log())
                raise
            if label is not None:
                with self._guard.lock:
                    step = change.step()
                    if not step.empty:
                        self._state.history.push(step)

    def execute(self, change: Change, *actions: Action) -> None:
        """Run predictor actions (not `Propagate`) in one model call and apply each one's effect on masks,
        prompts and clocks (one clock tick per action). Runs inside `edit` (model lock held)."""
        try:
            results = self._executor.run(self._state.history.log() + change.actions, actions)
        except VideoSourceError as error:
            raise SessionError(f"Cannot decode this frame of {self._media.description}: {error}") from error
        with self._guard.lock:
            for action, result in zip(actions, results):
                clock = self._state.tick()
                self._state.apply(change, action, result, clock, self._non_overlap)
                change.actions.append(action)

    def replay(self, log: list[Action]) -> None:
        """Run a prompt log from the start, rebuilding masks and clocks (one clock tick per action)."""
        with self._guard.model_lock:
            change = self._state.change("replay")
            for index, action in enumerate(log):
                clock = self._state.tick()
                if isinstance(action, Propagate):
                    for tracked in self._executor.track(log[:index], action.legs, threading.Event()):
                        frame, masks, scores = tracked.result
                        with self._guard.lock:
                            self._state.put_tracked(change, frame, masks, scores, clock)
                else:
                    (result,) = self._executor.run(log[:index], [action])
                    with self._guard.lock:
                        self._state.apply(change, action, result, clock, self._non_overlap)
            with self._guard.lock:
                self._state.rebuild_from(log)

    def _size(self) -> tuple[int, int]:
        return self._media.frames.width, self._media.frames.height
