"""Tracking runs: which frames a run visits, and the progress events a front end streams.

A run is one or two legs of ``propagate_in_video``. ``"forward"`` goes from ``start`` up to ``end``,
``"backward"`` from ``start`` down to ``end``, and ``"both"`` does the forward leg and then the backward leg
from the same start (so the start frame is visited twice, as in the official demo). The predictor cannot
run backwards from frame 0, so a backward leg starting there is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SessionError
from .prompts import Leg

DIRECTIONS = ("forward", "backward", "both")


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
