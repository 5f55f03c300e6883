"""What crosses the boundary between a session and the worker process that runs its model calls.

A `ModelCall` holds everything the worker needs and nothing it could not pickle: the session's id, the key of
the predictor the worker process already has (`model_worker.register_predictor`), how to open the media
(`media.MediaRef`), the prompt log the call builds on with its version (`prompts.log_version`), and the call
itself. The worker answers with a stream of replies: one `ActionDone` per prompt action, one `FrameDone` per
tracked frame, `MasksFound` for "segment everything", then `CallEnd` with the new version, or `CallFailed`
with the error's type and message. Masks travel bit-packed (`PackedFrame`); no tensor crosses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .executor import FoundMask, FrameResult, Scores
from .media import MediaRef
from .prompts import Action, Leg

RUN, TRACK, SEGMENT = "run", "track", "segment"


@dataclass(frozen=True)
class ModelCall:
    """One model call of one session, as a worker receives it.

    session: the session's id (the worker keeps its predictor state under it).
    predictor: the key of the predictor registered in the process the worker was forked from.
    media: how to open the session's frames.
    state_on_cpu, precision, corrections_as_conditioning: as `Session.open` was given them.
    log, version: the prompt log the call builds on and its `log_version`.
    kind: `RUN` (``actions``), `TRACK` (``legs``, stopping when ``stop_path`` exists) or `SEGMENT`
      (``frame`` with the mask generator's ``options``).
    gpu_seconds: the duration asked of ZeroGPU for this call.
    """

    session: str
    predictor: str
    media: MediaRef
    state_on_cpu: bool
    precision: str
    log: tuple[Action, ...]
    version: str
    kind: str
    corrections_as_conditioning: bool = True
    actions: tuple[Action, ...] = ()
    legs: tuple[Leg, ...] = ()
    stop_path: str | None = None
    frame: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    gpu_seconds: int = 60


@dataclass(frozen=True)
class PackedFrame:
    """A `FrameResult` with each mask as ``np.packbits`` of its H*W row-major pixels."""

    frame: int
    shape: tuple[int, int]  # H, W
    masks: dict[int, bytes]
    scores: Scores

    @classmethod
    def pack(cls, result: FrameResult) -> PackedFrame:
        shapes = {mask.shape for mask in result.masks.values()}
        shape = shapes.pop() if shapes else (0, 0)
        masks = {obj: np.packbits(mask, axis=None).tobytes() for obj, mask in result.masks.items()}
        return cls(result.frame, shape, masks, dict(result.scores))

    def unpack(self) -> FrameResult:
        return FrameResult(
            self.frame, {obj: unpack_mask(b, self.shape) for obj, b in self.masks.items()}, self.scores
        )


def unpack_mask(packed: bytes, shape: tuple[int, int]) -> np.ndarray:
    """H, W bool pixels of ``np.packbits`` bytes."""
    height, width = shape
    bits = np.unpackbits(np.frombuffer(packed, np.uint8), count=height * width)
    return bits.view(bool).reshape(height, width)


@dataclass(frozen=True)
class ActionDone:
    """Action ``index`` of a `RUN` call ran; its frame's result (None for clearing and removing)."""

    index: int
    result: PackedFrame | None


@dataclass(frozen=True)
class FrameDone:
    """One tracked frame of a `TRACK` call, of leg ``leg`` (an index into the call's legs)."""

    leg: int
    result: PackedFrame


@dataclass(frozen=True)
class MasksFound:
    """The masks of a `SEGMENT` call, bit-packed, with their areas."""

    shape: tuple[int, int]
    masks: tuple[tuple[bytes, int], ...]

    @classmethod
    def pack(cls, found: list[FoundMask], shape: tuple[int, int]) -> MasksFound:
        return cls(shape, tuple((np.packbits(f.mask, axis=None).tobytes(), f.area) for f in found))

    def unpack(self) -> list[FoundMask]:
        return [FoundMask(unpack_mask(bits, self.shape), area) for bits, area in self.masks]


@dataclass(frozen=True)
class CallEnd:
    """The call is over: the worker's state is now at ``version`` (None: unknown); ``replayed`` actions of the
    log were run again first (0: the worker still held the state the call built on)."""

    version: str | None
    replayed: int


@dataclass(frozen=True)
class CallFailed:
    """The call raised ``error`` (the exception's type name) with ``message`` in the worker."""

    error: str
    message: str


Reply = ActionDone | FrameDone | MasksFound | CallEnd | CallFailed
