"""Tracking runs: which frames a run visits, and the progress events a front end streams.

A run is one or two legs of ``propagate_in_video``. ``"forward"`` goes from ``start`` up to ``end``,
``"backward"`` from ``start`` down to ``end``, and ``"both"`` does the forward leg and then the backward leg
from the same start (so the start frame is visited twice, as in the official demo). The predictor cannot
run backwards from frame 0, so a backward leg starting there is empty.

`TrackingRuns` runs them for a session: it plans a run here, takes the executor's tracked frames one at a
time under the model lock, stores each frame's masks as it comes and yields a `PropagationProgress`; the
whole run is one undo step, with one `Propagate` action in the log per executor call (one call, unless the
executor limits the frames a call may take). It also keeps how long tracked frames took, for estimates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.errors import VideoSourceError

from .document import SessionState
from .errors import SessionError
from .executor import ModelExecutor, TrackedFrame
from .guard import SessionGuard
from .history import Change
from .prompts import Leg, Propagate

DIRECTIONS = ("forward", "backward", "both")

RECENT_RUN_WEIGHT = 0.5
"""In `TrackingRuns.seconds_per_frame`, each tracking run counts this much less than the run after it."""


@dataclass(frozen=True, eq=False)
class PropagationProgress:
    """One tracked frame, as a run yields it.

    frame_index: the frame just tracked. done / total: frames processed so far / planned for the run.
    elapsed_s: seconds since the run started. eta_s: estimated seconds left (from the mean time per frame).
    masks: the frame's masks after this step, object id -> H, W bool. direction: "forward" or "backward"
    (the leg this frame belongs to).
    """

    frame_index: int
    done: int
    total: int
    elapsed_s: float
    eta_s: float
    masks: dict[int, np.ndarray]
    direction: str

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass(frozen=True)
class PropagationSummary:
    """How the last run ended: frames processed, planned, whether it was cancelled, and its duration."""

    direction: str
    start: int
    done: int
    total: int
    cancelled: bool
    elapsed_s: float


def plan_legs(
    direction: str,
    start: int | None,
    end: int | tuple[int, int] | None,
    num_frames: int,
    prompted_frames: list[int],
) -> tuple[int, tuple[Leg, ...]]:
    """The start frame and legs of a run; `SessionError` for a request that cannot be done.

    Arguments:
      direction: "forward", "backward" or "both".
      start: the frame tracking starts from. Default: the first prompted frame ("forward", "both") or the
        last one ("backward").
      end: the frame tracking stops at, inclusive: >= start for "forward" (default: the last frame), <= start
        for "backward" (default: 0); for "both" a (first, last) pair around start (default: the whole video).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if not prompted_frames:
        raise SessionError("Nothing to track yet: add a point, box or mask on a frame first.")
    last = num_frames - 1
    if start is None:
        start = prompted_frames[-1] if direction == "backward" else prompted_frames[0]
    start = _frame(start, num_frames, "start")

    if direction == "both":
        first, stop = (0, last) if end is None else _pair(end, num_frames)
        if not first <= start <= stop:
            raise SessionError(
                f"Tracking starts at frame {start}, outside the range {first}..{stop} it should cover: "
                "choose a start frame inside the range."
            )
        return start, (Leg(start, stop - start + 1, False), _backward(start, first))
    if isinstance(end, tuple):
        raise TypeError("end is a (first, last) pair only for direction='both'")
    if direction == "forward":
        stop = last if end is None else _frame(end, num_frames, "end")
        if stop < start:
            raise SessionError(
                f"Forward tracking from frame {start} cannot end at the earlier frame {stop}: "
                "choose an end frame after the start, or track backward."
            )
        return start, (Leg(start, stop - start + 1, False),)
    stop = 0 if end is None else _frame(end, num_frames, "end")
    if stop > start:
        raise SessionError(
            f"Backward tracking from frame {start} cannot end at the later frame {stop}: "
            "choose an end frame before the start, or track forward."
        )
    return start, (_backward(start, stop),)


def split_legs(legs: tuple[Leg, ...], max_frames: int | None) -> list[tuple[Leg, ...]]:
    """A run's legs cut into calls of at most ``max_frames`` frames each (None: one call), in order.

    A cut leg goes on where its part before stopped (the next frame in its direction), so tracking the parts
    one after the other visits the same frames with the same memory as the whole leg. The predictor tracks
    nothing backward from frame 0, so a backward part never starts there (its call takes one more frame).
    """
    legs = tuple(leg for leg in legs if leg.count > 0)
    if max_frames is None:
        return [legs] if legs else []
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    calls: list[tuple[Leg, ...]] = []
    current: list[Leg] = []
    room = max_frames
    for leg in legs:
        start, left = leg.start, leg.count
        while left > 0:
            take = min(left, room)
            if leg.reverse and left - take == 1 and start - take == 0:
                take = left  # a backward call cannot start at frame 0: it goes one frame over instead
            current.append(Leg(start, take, leg.reverse))
            start += -take if leg.reverse else take
            left -= take
            room -= take
            if room <= 0:
                calls.append(tuple(current))
                current, room = [], max_frames
    if current:
        calls.append(tuple(current))
    return calls


def done_legs(legs: tuple[Leg, ...], counts: list[int]) -> tuple[Leg, ...]:
    """The legs as they ran: ``counts[i]`` frames of ``legs[i]`` (legs that ran no frame left out)."""
    return tuple(Leg(leg.start, count, leg.reverse) for leg, count in zip(legs, counts) if count > 0)


def _backward(start: int, stop: int) -> Leg:
    # propagate_in_video(reverse=True) yields nothing from frame 0 (the official behaviour).
    return Leg(start, start - stop + 1 if start > 0 else 0, True)


def _frame(value: int, num_frames: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a frame index (int), got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < num_frames:
        raise SessionError(
            f"Cannot track from or to frame {value}: the video has frames 0 to {num_frames - 1}."
        )
    return value


def _pair(end: object, num_frames: int) -> tuple[int, int]:
    if not isinstance(end, tuple) or len(end) != 2:
        raise TypeError(f"for direction='both', end is a (first, last) pair of frames, got {end!r}")
    first, last = (_frame(v, num_frames, "end") for v in end)
    if first > last:
        raise SessionError(f"The range {first}..{last} is empty: give (first, last) with first <= last.")
    return first, last


class TrackingRuns:
    """A session's tracking runs: planning, the frame loop, cancel, and how long a run will take.

    Shares the session's document, guard (locks, flags, cancel event) and executor; `Session.propagate` and
    its neighbours are one-line forwarders to it and carry the public documentation.
    """

    def __init__(
        self, state: SessionState, guard: SessionGuard, executor: ModelExecutor, num_frames: int
    ) -> None:
        self._state = state
        self._guard = guard
        self._executor = executor
        self._num_frames = num_frames
        self.last: PropagationSummary | None = None  # how the last run ended (read under the guard's lock)
        self._timed_seconds = 0.0  # decayed sums over runs, for seconds_per_frame
        self._timed_frames = 0.0

    def start(self, direction: str, start: int | None, end: Any) -> Iterator[PropagationProgress]:
        """Check the request now (raising `SessionError` before anything runs) and return the run."""
        with self._guard.lock:
            self._guard.check_idle()
            self._plan(direction, start, end)
        self._guard.cancel.clear()
        return self._run(direction, start, end)

    def estimate(self, direction: str, start: int | None, end: Any) -> tuple[int, float | None]:
        """(frames a run would track, seconds it would take or None before any measure)."""
        with self._guard.lock:
            _, legs = self._plan(direction, start, end)
        frames = sum(leg.count for leg in legs)
        per_frame = self.seconds_per_frame()
        return frames, None if per_frame is None else frames * per_frame

    def seconds_per_frame(self) -> float | None:
        """Measured seconds per tracked frame over this session's tracking runs, recent runs weighted more
        (each run weighs `RECENT_RUN_WEIGHT` as much as the one after it); None before any frame was tracked.

        Counts the model's work per frame, not the time a consumer of `propagate` spends between frames.
        """
        with self._guard.lock:
            return None if self._timed_frames <= 0 else self._timed_seconds / self._timed_frames

    def _plan(self, direction: str, start: int | None, end: Any) -> tuple[int, tuple[Leg, ...]]:
        return plan_legs(direction, start, end, self._num_frames, self._state.table.frames())

    def _run(self, direction: str, start: int | None, end: Any) -> Iterator[PropagationProgress]:
        guard = self._guard
        with guard.model_lock:
            with guard.lock:
                guard.check_idle()
                start, legs = self._plan(direction, start, end)
                guard.propagating = True
                clock = self._state.tick()
                change = self._state.change(f"propagate {direction}")
        # An executor that lends the model for a limited time per call gets the run in parts, each going on
        # where the last stopped (one `Propagate` each, all in this run's one undo step).
        calls = split_legs(legs, self._executor.max_frames_per_call())
        run = _RunCount(total=sum(leg.count for leg in legs), began=time.perf_counter())
        cancelled = False
        try:
            for call_legs in calls:
                if guard.cancel.is_set():
                    break
                yield from self._call(change, call_legs, clock, run)
            cancelled = guard.cancel.is_set() and run.done < run.total
        except GeneratorExit:
            cancelled = True
            raise
        finally:
            with guard.lock:
                if change.actions:
                    self._state.history.push(change.step())
                elapsed = time.perf_counter() - run.began
                self.last = PropagationSummary(direction, start, run.done, run.total, cancelled, elapsed)
                if run.done:
                    self._timed_seconds = self._timed_seconds * RECENT_RUN_WEIGHT + run.working
                    self._timed_frames = self._timed_frames * RECENT_RUN_WEIGHT + run.done
                guard.propagating = False
                guard.cancel.clear()

    def _call(
        self, change: Change, call_legs: tuple[Leg, ...], clock: int, run: _RunCount
    ) -> Iterator[PropagationProgress]:
        """One executor `track` call of a run: its frames stored and yielded; its `Propagate` recorded."""
        with self._guard.lock:
            log = self._state.history.log() + change.actions
        counts = [0] * len(call_legs)
        frames = self._executor.track(log, call_legs, self._guard.cancel)
        try:
            while True:
                step_began = time.perf_counter()
                with self._guard.model_lock:
                    tracked = self._next_frame(frames, run.done)
                if tracked is None:
                    break
                counts[tracked.leg] += 1
                run.done += 1
                frame, masks, scores = tracked.result
                with self._guard.lock:
                    self._state.put_tracked(change, frame, masks, scores, clock)
                    shown = self._state.store.entries(frame)
                run.working += time.perf_counter() - step_began
                elapsed = time.perf_counter() - run.began
                yield PropagationProgress(
                    frame_index=frame,
                    done=run.done,
                    total=run.total,
                    elapsed_s=elapsed,
                    eta_s=elapsed / run.done * (run.total - run.done),
                    masks={o: e.mask(self._state.store.shape) for o, e in shown.items()},
                    direction="backward" if call_legs[tracked.leg].reverse else "forward",
                )
        finally:
            with self._guard.model_lock:
                frames.close()
            ran = done_legs(call_legs, counts)
            if ran:
                change.actions.append(Propagate(ran))

    @staticmethod
    def _next_frame(frames: Iterator[TrackedFrame], done: int) -> TrackedFrame | None:
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


@dataclass
class _RunCount:
    """Counters of one run: frames planned and done, when it began, seconds spent tracking (not waiting for
    the consumer of the progress events)."""

    total: int
    began: float
    done: int = 0
    working: float = 0.0
