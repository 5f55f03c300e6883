"""The processes of a run: one, or several started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT`` in the environment).

Several processes run torch.distributed: NCCL between CUDA devices (process ``r`` on ``cuda:LOCAL_RANK``),
gloo on the CPU. Rank 0 (the main process) writes every file, draws the progress bar and validates; the
others wait for it at a barrier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from apps.finetune.errors import FinetuneError
from model.loading.device import resolve_device

WAIT_FOR_RANK_0 = timedelta(hours=3)
"""How long the other processes wait at a barrier (rank 0 validating a large set, saving a checkpoint)."""


@dataclass
class Processes:
    """Where this process stands among the processes of the run, and the collective calls the run needs
    (each a no-op on a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process (so all stop together after the same step)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process (any picklable object)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


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
    dist.init_process_group(backend, timeout=WAIT_FOR_RANK_0)
    return Processes(rank, world_size, local_rank, resolved)


def _single_device(device: str) -> torch.device:
    try:
        return resolve_device(device)
    except RuntimeError as error:
        raise FinetuneError(f"--device {device}: {error}") from None
