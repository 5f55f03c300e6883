"""The seam every model call of a `Session` goes through: an executor.

A session keeps its document (objects, prompts, masks, history) and hands each call that needs the network
to its executor with the prompt log the call builds on:

- `run` — prompt actions (a click, a box, a mask, clearing, removing an object), each giving its frame's
  masks;
- `track` — a tracking run's legs, frame by frame, until done or until ``stop`` is set;
- `segment` — the automatic mask generator on one frame ("segment everything").

An executor brings its predictor state up to the given log before a call (replaying it if the state it holds
is another one), so the session never has to know where the state lives. Two executors exist:

- `Tracker` (the default): the predictor and its state in this process, exactly as before the seam;
- `WorkerExecutor`: every call runs in a worker process, as ``spaces.GPU`` does on a Hugging Face ZeroGPU
  Space; inputs and outputs are plain picklable data (see `model_calls`), the state stays in the worker's
  bounded cache, and nothing the worker changes in memory is needed by this process.

An executor is made per session by an `ExecutorFactory` from the session's `SessionModel`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from model.errors import VideoSourceError
from model.loading.precision import Precision

from .errors import SessionError
from .media import plain_words
from .prompts import Action, Leg

if TYPE_CHECKING:
    from .media import Media
    from .predictor import VideoPredictor

Scores = dict[int, tuple[float, float]]  # object id -> (predicted IoU, object score logit)


class FrameResult(NamedTuple):
    """One frame's result: its index, object id -> H, W bool mask, and object id -> (predicted IoU,
    object score logit) of those masks (empty for a predictor without ``frame_scores``)."""

    frame: int
    masks: dict[int, np.ndarray]
    scores: Scores


class TrackedFrame(NamedTuple):
    """One frame of a tracking call: the index of its leg among the call's legs, and its result."""

    leg: int
    result: FrameResult


class FoundMask(NamedTuple):
    """One mask of "segment everything": H, W bool pixels and their area."""

    mask: np.ndarray
    area: int


@dataclass(frozen=True)
class SessionModel:
    """What a session's model calls need: the predictor, the opened media, where the tracking state is kept
    between calls (``state_on_cpu``), the precision the network runs in, and whether a correction on a
    tracked frame becomes a conditioning frame (``corrections_as_conditioning``, see `Session.open`)."""

    predictor: VideoPredictor
    media: Media
    state_on_cpu: bool
    precision: Precision
    corrections_as_conditioning: bool = True


class ModelExecutor(Protocol):
    """Runs a session's model calls (see the module docstring). Calls come one at a time."""

    precision: Precision
    precision_label: str  # e.g. "bf16 autocast on CUDA (compute capability 9.0)"
    holds_state: bool  # the predictor state is in this process (the memory view can read it)

    def run(self, log: Sequence[Action], actions: Sequence[Action]) -> list[FrameResult | None]:
        """Bring the state to ``log``, then run ``actions`` (no `Propagate`) in order: per action its frame's
        result (prompts) or None (clearing, removing)."""
        ...

    def track(
        self, log: Sequence[Action], legs: Sequence[Leg], stop: threading.Event
    ) -> Iterator[TrackedFrame]:
        """Bring the state to ``log``, then track ``legs`` frame by frame; ``stop`` set ends the call before
        its next frame. When the iterator ends (or is closed) the state holds ``Propagate`` of the frames
        given out, as `propagation.done_legs` counts them."""
        ...

    def segment(self, frame: int, options: dict[str, Any]) -> list[FoundMask]:
        """The automatic mask generator's masks on ``frame`` (``options`` are its keyword arguments)."""
        ...

    def max_frames_per_call(self) -> int | None:
        """The most frames one `track` call may take (None: no limit)."""
        ...

    def reflects(self, log: Sequence[Action]) -> bool:
        """Whether the state held here is exactly ``log`` applied."""
        ...

    def memory_layout(self, frame: int, obj: int) -> Any:
        """The predictor's memory layout of ``obj`` at ``frame`` (None where it cannot tell)."""
        ...

    def close(self) -> None: ...


ExecutorFactory = Callable[[SessionModel], ModelExecutor]
"""Makes the executor of a session (e.g. ``WorkerExecutors(...)`` for a ZeroGPU Space)."""


def start_executor(factory: ExecutorFactory, model: SessionModel) -> ModelExecutor:
    """``factory(model)``; on failure the media's frames are closed, and a file the model cannot read is
    said as a `SessionError`."""
    try:
        return factory(model)
    except (VideoSourceError, OSError) as error:
        model.media.frames.close()
        raise SessionError(f"Cannot read {model.media.description}: {plain_words(str(error))}.") from error
    except BaseException:
        model.media.frames.close()
        raise
