"""The training loop of ``python -m apps.finetune``: steps, logs, validation, checkpoints, stopping.

Every process runs the same steps on its own micro-batches (`apps.finetune.micro_batches`); rank 0 alone
writes files, shows progress and validates while the others wait at a barrier. After each step all
processes agree on whether to stop (a Ctrl-C or SIGTERM seen by any of them), so they stop after the same
step and ``last.pt`` holds that step.

Validation (with ``--val``) runs before the first step of a fresh run (the starting weights' J&F), every
``--val-every`` steps and after the last step; ``best.pt`` holds the weights with the best J&F so far,
the starting weights included (so a run that only got worse leaves the starting weights there).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from apps.finetune.checkpoints import save_best, save_last, training_entry
from apps.finetune.distributed import Processes
from apps.finetune.interrupt import StopRequest
from apps.finetune.logs import TrainingLog
from apps.finetune.micro_batches import MicroBatches, micro_batch_loader, schedule_of
from apps.finetune.model_setup import Trainee
from apps.finetune.progress import StepProgress
from apps.finetune.training_data import TrainingData
from apps.finetune.validation import Validator
from model.training.losses import LOSS_PARTS
from model.training.train_step import StepResult


class Outcome(Enum):
    FINISHED = "finished"
    STOPPED = "stopped"  # Ctrl-C or SIGTERM: last.pt saved after the current step


@dataclass
class RunState:
    """Where the run stands: completed steps, the best validation so far, and the settings a resume must
    share (saved in ``last.pt``)."""

    total_steps: int
    completed: int
    settings: dict[str, Any]
    best: dict[str, Any] = field(default_factory=lambda: {"jf": None, "step": None})
    last_validated: int | None = None


class FinetuneRun:
    """Runs the remaining steps of a fine-tuning run.

    Arguments:
      args: the parsed flags (``--out``, ``--accumulate``, ``--batch-size``, ``--workers``,
        ``--save-every``, ``--val-every``).
      processes: this process's place in the run.
      data: the checked data and its clip sampler.
      trainee: the network and its `TrainStep`.
      state: the step to start from and what ``last.pt`` carries.
      validator: scores J&F (rank 0, with ``--val``), else None.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        processes: Processes,
        data: TrainingData,
        trainee: Trainee,
        state: RunState,
        validator: Validator | None = None,
    ) -> None:
        self.args = args
        self.out = Path(args.out)
        self.processes = processes
        self.data = data
        self.trainee = trainee
        self.state = state
        self.validator = validator if processes.is_main else None
        self.validating = validator is not None
        self.log = TrainingLog(self.out, LOSS_PARTS)
        self.progress: StepProgress | None = None

    def train(self) -> Outcome:
        """Train from ``state.completed`` to ``state.total_steps``; stop early (saved) on a signal."""
        main = self.processes.is_main
        if main:
            self.log.start(self.state.completed)
        self.progress = StepProgress(self.state.total_steps, self.state.completed, enabled=main)
        try:
            with StopRequest(announce=main) as stop:
                if self.state.completed == 0:
                    self._validate()
                outcome = self._steps(stop)
                if outcome is Outcome.FINISHED and self.state.last_validated != self.state.completed:
                    self._validate()
                self._save()
        finally:
            self.progress.close()
        return outcome

    def _steps(self, stop: StopRequest) -> Outcome:
        args, state = self.args, self.state
        order = schedule_of(
            state.completed,
            state.total_steps,
            args.accumulate,
            self.processes.rank,
            self.processes.world_size,
        )
        loader = iter(
            micro_batch_loader(MicroBatches(self.data.sampler, args.batch_size), order, args.workers)
        )
        for step in range(state.completed, state.total_steps):
            started = time.perf_counter()
            batches = [next(loader) for _ in range(args.accumulate)]
            result = self.trainee.step.run(step, batches)
            state.completed = step + 1
            self._record(result, time.perf_counter() - started)
            stopping = self.processes.any(stop.requested)
            if state.completed == state.total_steps:
                break
            validated = bool(args.val_every) and state.completed % args.val_every == 0
            if validated:
                self._validate()
            if stopping:
                return Outcome.STOPPED
            if validated or state.completed % args.save_every == 0:
                self._save()  # after a validation too, so last.pt knows the best.pt on disk
        return Outcome.FINISHED

    def _record(self, result: StepResult, seconds: float) -> None:
        if not self.processes.is_main:
            return
        step = self.state.completed
        self.log.add_step(step, result.losses, result.lrs, result.grad_norm, seconds)
        self.progress.advance(result.losses["total"], result.lrs.get("base"))

    def _validate(self) -> None:
        """Score the network now (rank 0) while the other processes wait; keep ``best.pt`` up to date."""
        if not self.validating:
            return
        step = self.state.completed
        self.state.last_validated = step
        if self.validator is not None:
            self.progress.note(f"validating after {step} steps on {len(self.validator.videos)} videos ...")
            score, notes = self.validator.validate(self.trainee.network, step)
            for note in notes:
                self.progress.note(note)
            if score is not None:
                self.log.add_validation(step, score.j, score.f, score.jf, score.objects, score.seconds)
                self._keep_best(step, score.jf)
                best = self.state.best
                self.progress.note(
                    f"step {step}: J&F {score.jf:.1f} (J {score.j:.1f}, F {score.f:.1f}); "
                    f"best {best['jf']:.1f} at step {best['step']}"
                )
            self.log.draw()
        self.processes.barrier()

    def _keep_best(self, step: int, jf: float) -> None:
        best = self.state.best
        if best["jf"] is None or jf > best["jf"]:
            best.update(jf=float(jf), step=int(step))
            save_best(self.out, self.trainee.network)

    def _save(self) -> None:
        """Write ``last.pt`` (and the curves) for the steps completed so far (rank 0)."""
        if not self.processes.is_main:
            return
        entry = training_entry(
            self.state.completed,
            self.trainee.config,
            self.state.settings,
            self.trainee.step.state_dict(),
            self.state.best,
            self.processes.device,
        )
        save_last(self.out, self.trainee.network, entry)
        self.log.draw()
