"""Tracking runs of a `Session`: planning, the frame loop, cancel, and the time a run will take.

`TrackingRuns` is part of `Session` (a mixin: it uses the session's locks, executor and state). The frame loop
takes the executor's tracked frames one at a time under the model lock, stores each frame's masks as it
comes, and yields a `PropagationProgress`; the whole run is one undo step, with one `Propagate` action in the
log per executor call (one call, unless the executor limits the frames a call may take).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from model.errors import VideoSourceError

from .errors import SessionError
from .executor import TrackedFrame
from .prompts import Action, Propagate
from .propagation import PropagationProgress, PropagationSummary, done_legs, plan_legs, split_legs

RECENT_RUN_WEIGHT = 0.5
"""In `seconds_per_frame`, each tracking run counts this much less than the run after it."""


class TrackingRuns:
    """Part of `Session` (see the module docstring)."""

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
        # An executor that lends the model for a limited time per call gets the run in parts, each going on
        # where the last stopped (one `Propagate` each, all in this run's one undo step).
        calls = split_legs(legs, self._executor.max_frames_per_call())
        total = sum(leg.count for leg in legs)
        done, began, cancelled = 0, time.perf_counter(), False
        working = 0.0  # seconds spent tracking, not waiting for the consumer
        try:
            for call_legs in calls:
                if self._cancel.is_set():
                    break
                with self._lock:
                    log = self._state.history.log() + change.actions
                counts = [0] * len(call_legs)
                frames = self._executor.track(log, call_legs, self._cancel)
                try:
                    while True:
                        step_began = time.perf_counter()
                        with self._model_lock:
                            tracked = self._next_frame(frames, done)
                        if tracked is None:
                            break
                        counts[tracked.leg] += 1
                        done += 1
                        frame, masks, scores = tracked.result
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
                            direction="backward" if call_legs[tracked.leg].reverse else "forward",
                        )
                finally:
                    with self._model_lock:
                        frames.close()
                    ran = done_legs(call_legs, counts)
                    if ran:
                        change.actions.append(Propagate(ran))
            cancelled = self._cancel.is_set() and done < total
        except GeneratorExit:
            cancelled = True
            raise
        finally:
            with self._lock:
                if change.actions:
                    self._state.history.push(change.step())
                self._last_run = PropagationSummary(
                    direction, start, done, total, cancelled, time.perf_counter() - began
                )
                self._time_run(working, done)
                self._propagating = False
                self._cancel.clear()

    def _next_frame(self, frames: Iterator[TrackedFrame], done: int) -> TrackedFrame | None:
        """The next tracked frame of an executor's `track` call (None at its end), errors said for people."""
        try:
            return next(frames, None)
        except VideoSourceError as error:  # a damaged file: frames after some point cannot be decoded
            raise SessionError(
                f"Tracking stopped: {error}. The video file looks damaged there; the frames tracked so far "
                "are kept. Track up to the frame before, or re-encode the video."
            ) from error
        except RuntimeError as error:
            if done == 0 and "prompt" in str(error):
                raise SessionError(
                    f"Cannot track: {error}. Give each object a point, box or mask on a frame it was not "
                    "tracked on."
                ) from error
            raise

    def _replay(self, log: list[Action]) -> None:
        """Run a prompt log from the start, rebuilding masks and clocks (one clock tick per action)."""
        with self._model_lock:
            change = self._state.change("replay")
            for index, action in enumerate(log):
                clock = self._state.tick()
                if isinstance(action, Propagate):
                    for tracked in self._executor.track(log[:index], action.legs, threading.Event()):
                        frame, masks, scores = tracked.result
                        with self._lock:
                            self._state.put_tracked(change, frame, masks, scores, clock)
                else:
                    (result,) = self._executor.run(log[:index], [action])
                    with self._lock:
                        self._state.apply(change, action, result, clock, self._predictor.non_overlap_masks)
            with self._lock:
                self._state.rebuild_from(log)
