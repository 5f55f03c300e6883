"""`ForkedGPU`: what ``spaces.GPU`` does to a generator function on a ZeroGPU Space, without ZeroGPU.

On ZeroGPU, ``spaces.GPU`` runs the function in a worker process forked (``multiprocessing`` "fork") from the
app's process: the arguments are pickled into it and each yielded value pickled back; an idle worker may be
reused for the next call or a fresh one forked; closing the caller's generator sets the worker's stop event,
which the worker checks after each value; a worker that dies ends the call with an error in the caller.
Nothing the function changes in the worker's memory reaches the app's process.

`ForkedGPU` keeps that contract on any machine, with the choice of worker made by the caller, so the app can
be tested (and a Space owner can try it: ``python app.py --zero-gpu-emulation fresh``) as it runs there:

- ``"reuse"``: one worker serves every call while it lives;
- ``"fresh"``: every call gets a newly forked worker, which ends with the call;
- ``"random"``: reuse or fresh at random (seeded) per call;
- `kill_during_next_call`: the worker of the next call is killed (SIGKILL) after it gave some values.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

WORKER_MODES = ("reuse", "fresh", "random")
POLL_S = 0.05


class WorkerLost(RuntimeError):
    """The worker process ended before the call did (ZeroGPU says "GPU task aborted")."""


@dataclass
class _Worker:
    process: Any  # a fork-context Process
    conn: Connection
    stop: Any  # a fork-context Event


class ForkedGPU:
    """Runs generator functions in forked worker processes as ZeroGPU does (see the module docstring).

    ``ForkedGPU("fresh")(fn)`` returns a function with ``fn``'s arguments that yields what ``fn`` yields in
    the worker. ``seed`` drives the "random" mode.
    """

    def __init__(self, workers: str = "reuse", seed: int = 0) -> None:
        if workers not in WORKER_MODES:
            raise ValueError(f"workers must be one of {WORKER_MODES}, got {workers!r}")
        self.workers = workers
        self._random = random.Random(seed)
        self._context = multiprocessing.get_context("fork")
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._kill_after: int | None = None
        self.forks = 0  # workers forked so far
        self.calls = 0

    def kill_during_next_call(self, after_values: int = 1) -> None:
        """Kill the worker of the next call once it has given ``after_values`` values."""
        self._kill_after = after_values

    def __call__(self, fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Iterator[Any]:
            worker = self._take(fn)
            kill_after, self._kill_after = self._kill_after, None
            reusable = False
            try:
                worker.conn.send((args, kwargs))  # pickled, as ZeroGPU does
                given = 0
                while True:
                    kind, value = self._receive(worker)
                    if kind == "end":
                        reusable = True
                        return
                    if kind == "error":  # spaces does not reuse a worker whose call raised
                        raise RuntimeError(f"ZeroGPU worker error: {value}")
                    given += 1
                    if kill_after is not None and given >= kill_after:
                        os.kill(worker.process.pid, signal.SIGKILL)
                        kill_after = None
                    try:
                        yield value
                    except GeneratorExit:
                        worker.stop.set()  # as spaces does: the worker stops after its current value
                        reusable = self._drain(worker)
                        raise
            finally:
                self._give_back(worker, reusable)

        return call

    def shutdown(self) -> None:
        """End every idle worker."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            _end(worker)

    # ----------------------------------------------------------------------------------------- internals
    def _take(self, fn: Callable[..., Iterator[Any]]) -> _Worker:
        with self._lock:
            self.calls += 1
            fresh = self.workers == "fresh" or (self.workers == "random" and self._random.random() < 0.5)
            alive = [w for w in self._idle if w.process.is_alive()]
            stale = [w for w in self._idle if w not in alive]
            self._idle = [] if fresh else alive[1:]
            reuse = None if fresh or not alive else alive[0]
            ended = stale + (alive if fresh else [])
        for worker in ended:
            _end(worker)
        if reuse is not None:
            return reuse
        ours, theirs = self._context.Pipe()
        stop = self._context.Event()
        process = self._context.Process(target=_serve_calls, args=(fn, theirs, stop), daemon=True)
        process.start()
        theirs.close()
        with self._lock:
            self.forks += 1
        return _Worker(process, ours, stop)

    def _receive(self, worker: _Worker) -> tuple[str, Any]:
        while not worker.conn.poll(POLL_S):
            if not worker.process.is_alive() and not worker.conn.poll(0):
                raise WorkerLost(
                    f"GPU task aborted: the worker process ended (exit code {worker.process.exitcode})"
                )
        try:
            return worker.conn.recv()
        except (EOFError, OSError) as error:
            raise WorkerLost("GPU task aborted: the connection to the worker process broke") from error

    def _drain(self, worker: _Worker) -> bool:
        """Read what a stopped call still gives until its end; whether the worker can serve again."""
        try:
            while self._receive(worker)[0] not in ("end", "error"):
                pass
        except WorkerLost:
            return False
        return True

    def _give_back(self, worker: _Worker, reusable: bool) -> None:
        if reusable and self.workers != "fresh" and worker.process.is_alive():
            worker.stop.clear()
            with self._lock:
                self._idle.append(worker)
        else:
            _end(worker)


def _serve_calls(fn: Callable[..., Iterator[Any]], conn: Connection, stop: Any) -> None:
    """The worker process: run calls as they come, sending each value, then "end" (or "error")."""
    gc.freeze()  # see model_worker.prepare_fork: what was inherited is never collected here
    while True:
        try:
            received = conn.recv()
        except (EOFError, OSError):
            return
        if received is None:  # asked to end
            return
        args, kwargs = received
        stop.clear()
        try:
            values = fn(*args, **kwargs)
            for value in values:
                if stop.is_set():
                    values.close()
                    break
                conn.send(("value", value))
        except Exception as error:  # noqa: BLE001 - the caller gets the error's type, as from spaces
            conn.send(("error", type(error).__name__))
            continue
        conn.send(("end", None))


def _end(worker: _Worker) -> None:
    try:
        worker.conn.send(None)  # the worker returns (other forks hold copies of the pipe: no EOF to wait for)
    except OSError:
        pass
    worker.conn.close()
    worker.process.join(timeout=5)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join()
