"""Model calls run in a worker process, as a ZeroGPU Space runs them: the session side of `model_worker`.

`WorkerExecutors` is an `executor.ExecutorFactory`; each session gets a `WorkerExecutor` that turns its calls
into `ModelCall`s, hands them to a launcher and applies nothing itself: it returns the results to the
`Session`, which keeps the document in this process. The launcher is ``spaces.GPU(duration=call_seconds)``
around `model_worker.serve` on a ZeroGPU Space, or `ForkedGPU` (the same contract without a GPU) anywhere.

Stop reaches the worker through a file (`model_worker.FileStop`); a worker that dies, or a GPU that cannot be
had, ends the call with a `SessionError` saying so, and the session keeps every mask it stored.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.errors import VideoSourceError
from model.loading.precision import describe_precision

from .errors import SessionError
from .executor import FoundMask, FrameResult, SessionModel, TrackedFrame
from .gpu_budget import GpuBudget, replay_frames
from .media import plain_words
from .model_calls import (
    RUN,
    SEGMENT,
    TRACK,
    ActionDone,
    CallEnd,
    CallFailed,
    FrameDone,
    MasksFound,
    ModelCall,
    Reply,
)
from .model_worker import register_predictor
from .predictor import predictor_device
from .prompts import Action, Leg, log_version

Launcher = Callable[[ModelCall], Iterator[Reply]]
"""Runs `model_worker.serve` on a call somewhere and yields its replies (``spaces.GPU(...)(serve)``)."""

STOP_POLL_S = 0.02  # how often a running tracking call looks whether Stop was pressed
FRAME_TIME_DECAY = 0.9  # in the measured seconds per frame, each earlier frame counts this much less
_ERRORS: dict[str, type[Exception]] = {
    "SessionError": SessionError,
    "VideoSourceError": VideoSourceError,
    "ValueError": ValueError,
    "RuntimeError": RuntimeError,
}


def call_seconds(call: ModelCall) -> int:
    """The duration a call asks ZeroGPU for (what ``spaces.GPU(duration=...)`` is given)."""
    return call.gpu_seconds


class WorkerError(RuntimeError):
    """A model call failed in the worker with an error the session does not know."""


@dataclass
class WorkerStats:
    """What a session's calls cost: calls made, and actions the worker had to replay first (0 on a hit)."""

    calls: int = 0
    replayed: int = 0
    misses: int = 0


class WorkerExecutor:
    """One session's model calls through a launcher (see the module docstring)."""

    holds_state = False

    def __init__(
        self, launcher: Launcher, predictor_key: str, model: SessionModel, budget: GpuBudget
    ) -> None:
        self._launcher = launcher
        self._predictor_key = predictor_key
        self._model = model
        self._budget = budget
        self.session_id = uuid.uuid4().hex
        self.precision = model.precision
        self.precision_label = describe_precision(predictor_device(model.predictor), model.precision)
        self.stats = WorkerStats()
        self._frame_seconds = 0.0  # decayed sums of the time each tracked frame took to arrive
        self._frame_count = 0.0
        self._stop_dir: Path | None = None

    @property
    def seconds_per_frame(self) -> float | None:
        """Seconds a tracked frame took to arrive from the worker, recent frames weighted more (None before
        any was measured); the durations of later calls are asked from it."""
        return self._frame_seconds / self._frame_count if self._frame_count else None

    # ------------------------------------------------------------------------------------- executor calls
    def run(self, log: Sequence[Action], actions: Sequence[Action]) -> list[FrameResult | None]:
        log, actions = tuple(log), tuple(actions)
        frames = len(actions) + replay_frames(log)
        call = self._call(RUN, log, frames, actions=actions)
        results: list[FrameResult | None] = [None] * len(actions)
        for reply in self._replies(call, "The click"):
            if isinstance(reply, ActionDone):
                results[reply.index] = None if reply.result is None else reply.result.unpack()
        return results

    def track(
        self, log: Sequence[Action], legs: Sequence[Leg], stop: threading.Event
    ) -> Iterator[TrackedFrame]:
        log, legs = tuple(log), tuple(legs)
        frames = sum(leg.count for leg in legs) + replay_frames(log)
        stop_path = self._stop_file()
        call = self._call(TRACK, log, frames, legs=legs, stop_path=str(stop_path))
        finished = threading.Event()

        def watch() -> None:  # Stop pressed -> the file the worker looks for before each frame
            while not finished.wait(STOP_POLL_S):
                if stop.is_set():
                    stop_path.touch()
                    return

        watcher = threading.Thread(target=watch, name="sam2-ui-stop-watch", daemon=True)
        watcher.start()
        previous = None  # the first frame's time also holds the worker's start-up: not measured
        try:
            for reply in self._replies(call, "Tracking"):
                if isinstance(reply, FrameDone):
                    now = time.perf_counter()
                    if previous is not None:
                        self._frame_seconds = self._frame_seconds * FRAME_TIME_DECAY + (now - previous)
                        self._frame_count = self._frame_count * FRAME_TIME_DECAY + 1
                    yield TrackedFrame(reply.leg, reply.result.unpack())
                    previous = time.perf_counter()
        finally:
            finished.set()
            watcher.join()
            stop_path.unlink(missing_ok=True)

    def segment(self, frame: int, options: dict[str, Any]) -> list[FoundMask]:
        points = int(options.get("points_per_side", 32) or 32)
        call = self._call(
            SEGMENT, (), 1 + math.ceil(points * points / 64), frame=frame, options=dict(options)
        )
        found: list[FoundMask] = []
        for reply in self._replies(call, "Segment everything"):
            if isinstance(reply, MasksFound):
                found = reply.unpack()
        return found

    def max_frames_per_call(self) -> int | None:
        return self._budget.frames_per_call(self.seconds_per_frame)

    def reflects(self, log: Sequence[Action]) -> bool:
        return False  # the state is in the worker

    def memory_layout(self, frame: int, obj: int) -> Any:
        return None

    def close(self) -> None:
        if self._stop_dir is not None:
            shutil.rmtree(self._stop_dir, ignore_errors=True)

    # ----------------------------------------------------------------------------------------- internals
    def _call(self, kind: str, log: tuple[Action, ...], frames: int, **fields: Any) -> ModelCall:
        return ModelCall(
            session=self.session_id,
            predictor=self._predictor_key,
            media=self._model.media.ref,
            state_on_cpu=self._model.state_on_cpu,
            precision=self._model.precision,
            corrections_as_conditioning=self._model.corrections_as_conditioning,
            log=log,
            version=log_version(log),
            kind=kind,
            gpu_seconds=self._budget.seconds(frames, self.seconds_per_frame),
            **fields,
        )

    def _replies(self, call: ModelCall, what: str) -> Iterator[Reply]:
        """The call's replies up to its end; a failure in the worker raised here as the session's error."""
        self.stats.calls += 1
        replies = self._launcher(call)
        try:
            while True:
                try:
                    reply = next(replies)
                except StopIteration:
                    break
                except Exception as error:  # the worker died, or ZeroGPU refused or aborted the call
                    raise SessionError(
                        f"{what} did not finish: the GPU worker stopped ({_describe(error)}). Everything "
                        "shown before is kept: try again."
                    ) from error
                if isinstance(reply, CallFailed):
                    raise _ERRORS.get(reply.error, WorkerError)(
                        reply.message if reply.error in _ERRORS else plain_words(reply.message)
                    )
                if isinstance(reply, CallEnd):
                    self.stats.replayed += reply.replayed
                    self.stats.misses += reply.replayed > 0
                    return
                yield reply
            raise SessionError(f"{what} did not finish: the GPU worker ended the call early. Try again.")
        finally:
            replies.close()

    def _stop_file(self) -> Path:
        if self._stop_dir is None:
            self._stop_dir = Path(tempfile.mkdtemp(prefix="sam2_ui_stop_"))
        return self._stop_dir / f"{uuid.uuid4().hex}.stop"


class WorkerExecutors:
    """An `ExecutorFactory` running every session's model calls through ``launcher`` (see the module
    docstring). The predictor is registered for workers here: make this before the app serves."""

    def __init__(self, launcher: Launcher, predictor: Any, budget: GpuBudget | None = None) -> None:
        self.launcher = launcher
        self.predictor = predictor
        self.predictor_key = register_predictor(predictor)
        self.budget = budget or GpuBudget()

    def __call__(self, model: SessionModel) -> WorkerExecutor:
        if model.predictor is not self.predictor:
            raise ValueError("these workers run the predictor they were made with, not another one")
        return WorkerExecutor(self.launcher, self.predictor_key, model, self.budget)


def _describe(error: Exception) -> str:
    """What stopped the worker, in words a person reads (no exception class, errno or server path)."""
    text = plain_words(str(error))
    return text or "no reason given"
