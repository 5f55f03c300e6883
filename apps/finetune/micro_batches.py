"""The micro-batches a process computes, made by DataLoader workers ahead of the training step.

Micro-batch ``m`` (its run-wide number, `model.training.train_step.micro_batch_index`) holds B clips
(``--batch-size``) of one source of the data, ``ClipSampler.micro_batch(m, B)``. A clip depends on nothing but
the seed, ``m`` and its place in the micro-batch, so any process, any worker and any resume makes the same
micro-batch ``m``.
"""

from __future__ import annotations

import atexit
import multiprocessing
import signal
from functools import partial
from multiprocessing.synchronize import Event as EventType
from types import FrameType
from typing import Any

from torch.utils.data import DataLoader, Dataset

from model.training.batch import TrainBatch, collate
from model.training.data.sampler import ClipSampler
from model.training.train_step import micro_batch_index


class MicroBatches(Dataset):
    """``micro_batches[m]``: micro-batch ``m`` as a `TrainBatch` (its clips collated)."""

    def __init__(self, sampler: ClipSampler, batch_size: int) -> None:
        self.sampler = sampler
        self.batch_size = batch_size

    def __getitem__(self, micro_batch: int) -> TrainBatch:
        return collate(self.sampler.micro_batch(micro_batch, self.batch_size))


def schedule_of(first_step: int, last_step: int, accumulate: int, rank: int, world_size: int) -> list[int]:
    """The micro-batch numbers this process computes in steps ``first_step .. last_step - 1``, in order."""
    return [
        micro_batch_index(step, a, rank, world_size, accumulate)
        for step in range(first_step, last_step)
        for a in range(accumulate)
    ]


def _as_is(batch: TrainBatch) -> TrainBatch:
    return batch


def _hold_stop_signals(exiting: EventType, worker: int) -> None:
    """Ctrl-C, and the SIGTERM that torchrun and SLURM send to stop a job, reach the workers too (one process
    group). The training process alone decides what they mean, and needs its workers alive to finish the
    step it is in and save; then it ends them. Only while it exits (``exiting`` set) does SIGTERM end a
    worker, as the interpreter's exit ends the workers of a loader still referenced then (by a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, partial(_end_if_exiting, exiting))


def _end_if_exiting(exiting: EventType, number: int, frame: FrameType | None) -> None:
    if exiting.is_set():
        signal.signal(number, signal.SIG_DFL)
        signal.raise_signal(number)


def micro_batch_loader(micro_batches: MicroBatches, order: list[int], workers: int) -> DataLoader:
    """A loader yielding the micro-batches numbered ``order``, in that order, made by ``workers`` processes
    (0: made in this one, when asked for)."""
    extra: dict[str, Any] = {}
    if workers > 0:
        exiting = multiprocessing.Event()
        atexit.register(exiting.set)  # runs before multiprocessing's exit hook terminates the workers
        worker_init = partial(_hold_stop_signals, exiting)
        extra = {"prefetch_factor": 2, "persistent_workers": False, "worker_init_fn": worker_init}
    return DataLoader(
        micro_batches, batch_size=None, sampler=order, num_workers=workers, collate_fn=_as_is, **extra
    )
