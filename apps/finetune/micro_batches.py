"""The micro-batches a process computes, made by DataLoader workers ahead of the training step.

Micro-batch ``m`` (its run-wide number, `model.training.train_step.micro_batch_index`) holds the clips
``m * B .. m * B + B - 1`` of the data stream (B: ``--batch-size``). A clip depends on nothing but the seed
and its index, so any process, any worker and any resume makes the same micro-batch ``m``.
"""

from __future__ import annotations

import signal

from torch.utils.data import DataLoader, Dataset

from model.training.batch import TrainBatch, collate
from model.training.data.sampler import ClipSampler
from model.training.train_step import micro_batch_index


class MicroBatches(Dataset):
    """``micro_batches[m]``: micro-batch ``m`` as a `TrainBatch` (its clips collated)."""

    def __init__(self, sampler: ClipSampler, batch_size: int) -> None:
        self.sampler = sampler
        self.batch_size = batch_size

    def clip_indices(self, micro_batch: int) -> range:
        start = micro_batch * self.batch_size
        return range(start, start + self.batch_size)

    def __getitem__(self, micro_batch: int) -> TrainBatch:
        return collate([self.sampler.clip(index) for index in self.clip_indices(micro_batch)])


def schedule_of(first_step: int, last_step: int, accumulate: int, rank: int, world_size: int) -> list[int]:
    """The micro-batch numbers this process computes in steps ``first_step .. last_step - 1``, in order."""
    return [
        micro_batch_index(step, a, rank, world_size, accumulate)
        for step in range(first_step, last_step)
        for a in range(accumulate)
    ]


def _as_is(batch: TrainBatch) -> TrainBatch:
    return batch


def _ignore_interrupts(worker: int) -> None:
    """Ctrl-C reaches the workers too (one process group); the training process alone decides what it means,
    and needs its workers alive to finish the step it is in."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def micro_batch_loader(micro_batches: MicroBatches, order: list[int], workers: int) -> DataLoader:
    """A loader yielding the micro-batches numbered ``order``, in that order, made by ``workers`` processes
    (0: made in this one, when asked for)."""
    extra = {"prefetch_factor": 2, "persistent_workers": False} if workers > 0 else {}
    return DataLoader(
        micro_batches,
        batch_size=None,
        sampler=order,
        num_workers=workers,
        collate_fn=_as_is,
        worker_init_fn=_ignore_interrupts if workers > 0 else None,
        **extra,
    )
