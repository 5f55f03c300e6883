"""The worker side of model calls: `serve`, the one function a ZeroGPU Space runs under ``spaces.GPU``.

``spaces.GPU`` runs a function in a worker process forked from the app's process, pickling its arguments in
and its results out, and may reuse an idle worker for the next call or fork a fresh one. `serve` is written
for that: a pure function of its `ModelCall` and of what the process holds, namely the predictors registered
before the fork (`register_predictor`) and the states of the sessions it served before (`WorkerCache`).
It is a generator, so a tracking call streams its frames out as they are computed.

A tracking call stops before its next frame once the file ``call.stop_path`` exists: the app's process, which
cannot reach into the worker's memory, creates it when the user presses Stop. Every frame computed is given
out, so the state the worker keeps is exactly what the session records.

Errors are replies (`CallFailed`), not exceptions: ``spaces`` passes on only the type name of an exception
raised in the worker, and the user should read the message.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

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
    PackedFrame,
    Reply,
)
from .predictor import VideoPredictor
from .prompts import Propagate, log_version
from .propagation import done_legs
from .worker_cache import WorkerCache

_PREDICTORS: dict[str, VideoPredictor] = {}
_HOME_PID = os.getpid()  # the process predictors are registered in; workers are forked from it
_CACHE = WorkerCache()
_PREPARED_PID: int | None = None


def register_predictor(predictor: VideoPredictor) -> str:
    """Make ``predictor`` reachable by workers forked from this process from now on; returns its key.

    Register before the app starts serving (ZeroGPU forks fresh workers from the app's process at any time,
    but a reused worker only has what was registered before it was forked).
    """
    key = f"predictor-{id(predictor):x}"
    _PREDICTORS[key] = predictor
    return key


class FileStop:
    """A stop signal another process gives by creating a file (``is_set`` once it exists)."""

    def __init__(self, path: str | None) -> None:
        self.path = None if path is None else Path(path)

    def is_set(self) -> bool:
        return self.path is not None and self.path.exists()


def serve(call: ModelCall) -> Iterator[Reply]:
    """Run one model call in this (worker) process, streaming its replies (see the module docstring)."""
    _prepare_process()
    cached = None
    try:
        predictor = _PREDICTORS.get(call.predictor)
        if predictor is None:
            raise RuntimeError(
                "this worker process has no model: register the predictor (model_worker.register_predictor) "
                "before the app starts, so every worker is forked with it"
            )
        cached = _CACHE.get(call, predictor)
        tracker = cached.tracker
        if call.kind == SEGMENT:  # one frame's image: the state kept for the session stays as it is
            found = tracker.segment(call.frame, call.options)
            yield MasksFound.pack(found, (tracker.frames.height, tracker.frames.width))
            yield CallEnd(cached.version, 0)
            return
        log = call.log
        if cached.version == call.version:
            log = tuple(tracker.applied)  # the very records it holds: no comparison needed
        replayed = tracker.sync(log)
        cached.version = None  # unknown until this call ends as planned
        if call.kind == RUN:
            for index, result in enumerate(tracker.run(log, call.actions)):
                yield ActionDone(index, None if result is None else PackedFrame.pack(result))
            log = (*log, *call.actions)
        elif call.kind == TRACK:
            counts = [0] * len(call.legs)
            frames = tracker.track(log, call.legs, FileStop(call.stop_path))
            for tracked in frames:
                counts[tracked.leg] += 1
                yield FrameDone(tracked.leg, PackedFrame.pack(tracked.result))
            ran = done_legs(call.legs, counts)
            if ran:
                log = (*log, Propagate(ran))
        else:
            raise ValueError(f"unknown model call kind {call.kind!r}")
        cached.version = log_version(log)
        yield CallEnd(cached.version, replayed)
    except Exception as error:  # noqa: BLE001 - every error goes back as a message
        _CACHE.drop(call.session)
        yield CallFailed(type(error).__name__, str(error))


def _prepare_process() -> None:
    """Once in a forked worker: make what it inherited from the app's process safe to live beside."""
    global _PREPARED_PID
    if os.getpid() in (_HOME_PID, _PREPARED_PID):
        return
    _PREPARED_PID = os.getpid()
    prepare_fork()
    # GNU OpenMP cannot start threads in a fork of a process that ran its thread pool (it hangs): the CPU
    # side of a forked worker runs on one thread. The network runs on the GPU there.
    import torch

    torch.set_num_threads(1)


def prepare_fork() -> None:
    """Keep the garbage collector of a forked process off the objects it inherited.

    The app's process holds open videos whose decoders run threads; a fork has the objects but not the
    threads, and freeing such an object there waits for them forever. Objects that were already garbage at
    the fork would be freed by the first collection: frozen, they never are.
    """
    gc.freeze()
