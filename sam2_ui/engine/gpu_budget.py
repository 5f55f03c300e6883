"""How long a model call asks ZeroGPU for the GPU, and how many frames one tracking call may take.

ZeroGPU lends the GPU per call for a duration the call asks for up front: a shorter one gets the GPU sooner
and needs less of the visitor's quota, and a call running past its duration is aborted. A call asks for the
frames it will touch (its own, plus the log's if a fresh worker has to replay it) at the seconds per frame
measured so far, with a margin, capped at `GpuBudget.max_seconds`. A tracking run that would need more is cut
into calls that each fit (`frames_per_call`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .prompts import PROMPT_ACTIONS, Action, Propagate

ZERO_GPU_MAX_SECONDS = 300
"""The longest duration ZeroGPU grants one call (a longer request is refused)."""


@dataclass(frozen=True)
class GpuBudget:
    """The duration model calls ask for.

    max_seconds: the cap of one call (at most `ZERO_GPU_MAX_SECONDS`).
    base_seconds: a call's fixed cost: forking a worker, moving the model to the GPU, opening the video.
    seconds_per_frame: the guess before anything was measured (SAM 2.1 tiny on a ZeroGPU slice tracks
      about 20 frames a second; the guess is generous).
    margin: measured seconds per frame are multiplied by this much.
    """

    max_seconds: float = 120.0
    base_seconds: float = 10.0
    seconds_per_frame: float = 0.25
    margin: float = 1.5

    def __post_init__(self) -> None:
        if not 0 < self.max_seconds <= ZERO_GPU_MAX_SECONDS:
            raise ValueError(f"max_seconds must be in (0, {ZERO_GPU_MAX_SECONDS}], got {self.max_seconds}")
        if self.base_seconds >= self.max_seconds:
            raise ValueError("base_seconds must be less than max_seconds")

    def per_frame(self, measured: float | None) -> float:
        return self.margin * (self.seconds_per_frame if measured is None else measured)

    def seconds(self, frames: int, measured: float | None) -> int:
        """The duration of a call touching ``frames`` frames, given the measured seconds per frame."""
        wanted = self.base_seconds + frames * self.per_frame(measured)
        return int(min(self.max_seconds, math.ceil(wanted)))

    def frames_per_call(self, measured: float | None) -> int:
        """The most frames one tracking call may track within `max_seconds` (at least 1)."""
        return max(1, int((self.max_seconds - self.base_seconds) / self.per_frame(measured)))


def replay_frames(log: Sequence[Action]) -> int:
    """The frames a worker touches to replay ``log`` from scratch: one per prompt, every tracked frame."""
    frames = 0
    for action in log:
        if isinstance(action, Propagate):
            frames += sum(leg.count for leg in action.legs)
        elif isinstance(action, PROMPT_ACTIONS):
            frames += 1
    return frames
