"""The processes of a run: one, or several started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT`` in the environment).

Several processes run torch.distributed: NCCL between CUDA devices (process ``r`` on ``cuda:LOCAL_RANK``),
gloo on the CPU. Rank 0 (the main process) writes every file, draws the progress bar and validates.

Two timeouts. The collectives of the steps (DDP's gradients, the losses, the stop flag) wait
`COLLECTIVE_TIMEOUT`: a process that hangs or dies stops the others within that. Where the other processes
wait for rank 0 to work alone (checking the data, validating, the agreement after each part of the setup)
they wait on a second, gloo group with the long `WAIT_FOR_RANK_0`, on the CPU, where no NCCL watchdog runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from apps.finetune.errors import FinetuneError
from model.loading.device import resolve_device

COLLECTIVE_TIMEOUT = timedelta(minutes=30)
"""How long a collective of the training steps waits for the slowest process (a periodic save included)."""
WAIT_FOR_RANK_0 = timedelta(hours=3)
"""How long the other processes wait for rank 0 checking the data or validating a large set."""


@dataclass
class Processes:
    """Where this process stands among the processes of the run, and the collective calls the run needs
    (each a no-op on a single process). ``wait_group``: the gloo group of the long waits for rank 0."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    wait_group: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every process is here (up to `WAIT_FOR_RANK_0`: rank 0 may be validating)."""
        if self.distributed:
            dist.barrier(group=self.wait_group)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process (so all stop together after the same step)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process (any picklable object; up to `WAIT_FOR_RANK_0`)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.wait_group)
        return box[0]

    def agree(self, problem: str | None) -> None:
        """Raise the same `FinetuneError` on every process when any process has a ``problem`` (None: none).

        One problem that every process has is said as it is; otherwise each is said after the ranks that
        have it (``[rank 1]``), so rank 0 says what went wrong on a process that cannot see ``--out`` or
        ran out of memory."""
        problems = [problem]
        if self.distributed:
            problems = [None] * self.world_size
            dist.all_gather_object(problems, problem, group=self.wait_group)
        ranks_of: dict[str, list[int]] = {}
        for rank, found in enumerate(problems):
            if found is not None:
                ranks_of.setdefault(found, []).append(rank)
        if not ranks_of:
            return
        if len(ranks_of) == 1 and len(next(iter(ranks_of.values()))) == len(problems):
            raise FinetuneError(next(iter(ranks_of)), shared=True)
        raise FinetuneError(
            "\n".join(f"[{_ranks(ranks)}] {found}" for found, ranks in ranks_of.items()), shared=True
        )

    @contextmanager
    def together(self) -> Iterator[None]:
        """Run a part of the setup on every process and stop all of them if it fails on any: a
        `FinetuneError` raised in the block becomes `agree`'s. The block must hold no collective call that
        a failing process could miss."""
        problem = None
        try:
            yield
        except FinetuneError as error:
            problem = str(error)
        self.agree(problem)

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(str(rank) for rank in ranks)


def start_processes(device: str) -> Processes:
    """This process's place in the run, with torch.distributed initialised when torchrun started several.

    ``device``: the ``--device`` flag; under torchrun, "auto" and "cuda" mean ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes(device=_single_device(device))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    resolved = _single_device(device)
    if resolved.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise FinetuneError(
                f"process {rank} wants cuda:{local_rank} but this machine has {torch.cuda.device_count()} "
                "GPUs: start at most that many processes per node (torchrun --nproc_per_node)"
            )
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    elif resolved.type != "cpu":
        raise FinetuneError(
            f"several processes run on CUDA GPUs or on the CPU, not on {resolved.type}: pass --device cuda "
            "or --device cpu"
        )
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    wait_group = dist.new_group(backend="gloo", timeout=WAIT_FOR_RANK_0)
    return Processes(rank, world_size, local_rank, resolved, wait_group)


def _single_device(device: str) -> torch.device:
    try:
        return resolve_device(device)
    except RuntimeError as error:
        raise FinetuneError(f"--device {device}: {error}") from None
