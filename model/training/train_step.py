"""One optimizer step of fine-tuning: micro-batches, gradient accumulation, several processes, bf16.

Randomness is tied to the data, not to the process: the prompts (and dropout) of micro-batch ``m`` come from
generators seeded with ``(seed, m)``, where ``m`` counts micro-batches over the whole run and all processes
(`micro_batch_index`). So a step computes the same thing on 1 process accumulating 2 micro-batches as on 2
processes with 1 each (DDP averages the gradients; accumulation divides each loss by the count), and a
resumed run continues with the very draws an uninterrupted one would make.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from model.training.batch import TrainBatch
from model.training.clip_training import ClipTraining
from model.training.optimizer import clip_gradients
from model.training.prompts import plan_prompts
from model.training.schedule import CosineSchedule


def micro_batch_index(step: int, accumulation: int, rank: int, world_size: int, accumulate: int) -> int:
    """The run-wide number of the micro-batch that ``rank`` computes as its ``accumulation``-th of ``step``.

    Micro-batches are numbered step by step; within a step, accumulation round by round, rank by rank. The
    clips of micro-batch ``m`` are `model.training.data.sampler.ClipSampler.micro_batch` of ``m``."""
    return (step * accumulate + accumulation) * world_size + rank


def seeded_generator(seed: int, micro_batch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of one micro-batch's random choices, from the run's seed and the micro-batch number.

    It lives on the device that trains, so correction clicks are drawn where the masks are (a CUDA generator
    draws another stream than a CPU one: runs repeat on the same kind of device)."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + micro_batch)


@dataclass
class StepResult:
    """What a step reports: the losses (averaged over its micro-batches and processes), the learning rates
    of the step ("base" and "vision"), and the gradient norm before clipping."""

    step: int
    losses: dict[str, float]
    lrs: dict[str, float]
    grad_norm: float
    skipped: bool = False  # the gradients were not finite: no update was made


class TrainStep:
    """Runs optimizer steps of a `ClipTraining` module, on one process or under torch.distributed.

    Arguments:
      training: the network with its forward and losses.
      optimizer, schedule: from `build_optimizer` and `CosineSchedule`.
      seed: the run's seed (prompts and dropout of every micro-batch derive from it).
      accumulate: micro-batches per optimizer step on each process.
      precision: "fp32", or "bf16" for bf16 autocast (where the device runs it fast).
      max_grad_norm: gradient clipping (the official 0.1); None for none.
    """

    def __init__(
        self,
        training: ClipTraining,
        optimizer: torch.optim.Optimizer,
        schedule: CosineSchedule,
        seed: int = 0,
        accumulate: int = 1,
        precision: str = "fp32",
        max_grad_norm: float | None = 0.1,
    ) -> None:
        if accumulate < 1:
            raise ValueError(f"accumulate must be at least 1, got {accumulate}")
        self.training = training
        self.optimizer = optimizer
        self.schedule = schedule
        self.seed = seed
        self.accumulate = accumulate
        self.precision = precision
        self.max_grad_norm = max_grad_norm
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.runner: torch.nn.Module = training
        if self.distributed:
            device = training.model.device
            self.runner = DistributedDataParallel(
                training,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True,  # a mask-prompted clip leaves the point embeddings unused
            )

    def micro_batches_of(self, step: int) -> list[int]:
        """The run-wide numbers of the micro-batches this process computes in ``step``."""
        return [
            micro_batch_index(step, a, self.rank, self.world_size, self.accumulate)
            for a in range(self.accumulate)
        ]

    def run(self, step: int, batches: list[TrainBatch]) -> StepResult:
        """One optimizer step on this process's micro-batches of ``step`` (``batches``, in the order of
        `micro_batches_of`): forward, backward, all-reduce, clip, update."""
        if len(batches) != self.accumulate:
            raise ValueError(f"step {step} needs {self.accumulate} micro-batches, got {len(batches)}")
        device = self.training.model.device
        self.schedule.step(step)
        self.optimizer.zero_grad(set_to_none=True)
        num_objects = self._objects_per_batch(batches, device)
        totals: dict[str, torch.Tensor] = {}
        for a, (index, batch) in enumerate(zip(self.micro_batches_of(step), batches)):
            batch = batch.to(device)
            generator = seeded_generator(self.seed, index, device)
            torch.manual_seed(int(torch.randint(0, 2**62, (), generator=generator)))  # dropout
            plan = plan_prompts(batch.masks, self.training.settings, generator)
            last = a == self.accumulate - 1
            sync = nullcontext() if (last or not self.distributed) else self.runner.no_sync()
            with sync, self._autocast(device):
                losses = self.runner(batch, plan, generator, num_objects)
                (losses["total"] / self.accumulate).backward()
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + value.detach().float() / self.accumulate
        # Clipping measures the norm (of gradients already averaged over processes, so every process sees
        # the same); with no clipping an infinite bound only measures it.
        max_norm = self.max_grad_norm if self.max_grad_norm is not None else float("inf")
        grad_norm = float(clip_gradients(self.training.model.parameters(), max_norm))
        skipped = not math.isfinite(grad_norm)
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)  # a NaN or inf would poison every weight it touches
        else:
            self.optimizer.step()
        return StepResult(
            step=step,
            losses=self._averaged(totals),
            lrs={kind: self.schedule.lr_at(step, kind) for kind in self._kinds()},
            grad_norm=grad_norm,
            skipped=skipped,
        )

    def _objects_per_batch(self, batches: list[TrainBatch], device: torch.device) -> float:
        """Objects per micro-batch, averaged over the step's micro-batches on every process (at least 1)."""
        count = torch.tensor(float(sum(b.num_objects for b in batches)), device=device)
        if self.distributed:
            dist.all_reduce(count)
        return max(float(count) / (self.accumulate * self.world_size), 1.0)

    def _averaged(self, totals: dict[str, torch.Tensor]) -> dict[str, float]:
        names = sorted(totals)
        values = torch.stack([totals[n] for n in names])
        if self.distributed:
            dist.all_reduce(values)
            values = values / self.world_size
        return dict(zip(names, values.tolist()))

    def _kinds(self) -> list[str]:
        return sorted({group["kind"] for group in self.optimizer.param_groups})

    def _autocast(self, device: torch.device):
        if self.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return nullcontext()

    def state_dict(self) -> dict:
        """The optimizer's and the schedule's state (the step itself is the caller's)."""
        return {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
