"""The training loop of ``python -m apps.finetune``: steps, logs, validation, checkpoints, stopping.

Every process runs the same steps on its own micro-batches (`apps.finetune.micro_batches`); rank 0 alone
writes files, shows progress and validates while the others wait at a barrier. After each step all
processes agree on whether to stop (a Ctrl-C or SIGTERM seen by any of them), so they stop after the same
step and ``last.pt`` holds that step.

Validation (with ``--val``) runs before the first step of a fresh run (the starting weights' J&F), every
``--val-every`` steps and after the last step; ``best.pt`` holds the weights with the best J&F so far,
the starting weights included (so a run that only got worse leaves the starting weights there).

Problems a person can fix that show up mid-run stop it with a `FinetuneError` (status 2, no traceback),
after saving ``last.pt`` for the steps completed: a clip that cannot be read (a `TrainingDataError`, from a
DataLoader worker too), the device out of memory (with what to change), and `MAX_SKIPPED_IN_A_ROW` steps in
a row whose loss or gradients were not finite (`TrainStep` skips such a step; the run says what to lower).
Weights that are not finite are never saved: ``last.pt`` then keeps the previous save. Under torchrun all
processes agree before each step that their clips could be read, so a bad clip on any of them stops all
after rank 0 saved. Running out of memory inside a step is said by the process it happened on, which saves
``last.pt`` only if it is rank 0 (the others are waiting for it in the step's collective calls).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from apps.finetune.checkpoints import LAST, save_best, save_last, training_entry
from apps.finetune.distributed import Processes
from apps.finetune.errors import OUT_OF_MEMORY_HINT, FinetuneError, out_of_memory
from apps.finetune.interrupt import StopRequest
from apps.finetune.logs import TrainingLog
from apps.finetune.micro_batches import MicroBatches, micro_batch_loader, schedule_of
from apps.finetune.model_setup import Trainee
from apps.finetune.progress import StepProgress
from apps.finetune.training_data import TrainingData
from apps.finetune.validation import Validator
from model.training.batch import TrainBatch
from model.training.data import TrainingDataError
from model.training.losses import LOSS_PARTS
from model.training.train_step import StepResult

DATA_ADVICE = (
    "Fix or remove what it names (--check-frames decodes every frame in the check before training), then "
    "run the same command again to resume."
)
MAX_SKIPPED_IN_A_ROW = 10
"""Steps in a row whose loss or gradients were not finite after which a run stops: it no longer learns."""


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
        ``--save-every``, ``--val``, ``--val-every``, ``--lr``, ``--vision-lr``).
      processes: this process's place in the run.
      data: the checked data and its clip sampler.
      trainee: the network and its `TrainStep`.
      state: the step to start from and what ``last.pt`` carries.
      validator: scores J&F on rank 0 (with ``--val``), else None.
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
        self.validating = args.val is not None
        self.log = TrainingLog(self.out, LOSS_PARTS)
        self.progress: StepProgress | None = None
        self.saved: int | None = state.completed or None  # the step last.pt holds (None: no last.pt yet)
        self.updated = state.completed  # the last step that changed the weights
        self.skipped_in_a_row = 0
        self.doing = "the first step"  # for messages: the step or the validation under way

    def train(self) -> Outcome:
        """Train from ``state.completed`` to ``state.total_steps``; stop early (saved) on a signal; a problem
        the person can fix raises `FinetuneError` after saving what was completed."""
        main = self.processes.is_main
        if main:
            self.log.start(self.state.completed)
        self.progress = StepProgress(self.state.total_steps, self.state.completed, enabled=main)
        try:
            with StopRequest(announce=main) as stop:
                return self._train(stop)
        except torch.OutOfMemoryError as error:
            problem = out_of_memory(error, self.doing)
        finally:
            self.progress.close()
        # Out of the except block, so the failed step's tensors can be freed. Under torchrun the other
        # processes may be waiting in a collective call of the step: this one alone says it.
        raise self._given_up(problem, OUT_OF_MEMORY_HINT)

    def _train(self, stop: StopRequest) -> Outcome:
        if self.state.completed == 0:
            self._validate()
        outcome = self._steps(stop)
        if outcome is Outcome.FINISHED and self.state.last_validated != self.state.completed:
            self._validate()
        self._save()
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
            self.doing = f"step {step + 1}"
            started = time.perf_counter()
            batches = self._next_batches(loader)
            result = self.trainee.step.run(step, batches)
            state.completed = step + 1
            self._record(result, time.perf_counter() - started)
            self._check_learning(result)
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

    def _next_batches(self, loader: Iterator[TrainBatch]) -> list[TrainBatch]:
        """This process's micro-batches of the next step. A clip that cannot be read, on any process,
        stops every process before the step (rank 0 saves the steps done and says what went wrong where)."""
        batches, problem = [], None
        try:
            batches = [next(loader) for _ in range(self.args.accumulate)]
        except TrainingDataError as error:  # raised in a DataLoader worker, it arrives with its type
            problem = f"A clip of {self.doing} could not be read: {_original_message(error)}"
        if self.processes.any(problem is not None):
            try:
                self.processes.agree(problem)
            except FinetuneError as error:
                raise self._given_up(str(error), DATA_ADVICE, shared=True) from None
        return batches

    def _record(self, result: StepResult, seconds: float) -> None:
        if not self.processes.is_main:
            return
        step = self.state.completed
        self.log.add_step(step, result.losses, result.lrs, result.grad_norm, seconds, skipped=result.skipped)
        self.progress.advance(result.losses["total"], result.lrs.get("base"))
        if result.skipped:
            self.progress.note(
                f"step {step} skipped: its loss or gradients were not finite (NaN or inf), so the weights "
                "were left as they were"
            )

    def _check_learning(self, result: StepResult) -> None:
        """Count skipped steps; after `MAX_SKIPPED_IN_A_ROW` in a row, save and stop (every process sees
        the same gradient norm, so all stop here together)."""
        if not result.skipped:
            self.updated, self.skipped_in_a_row = self.state.completed, 0
            return
        self.skipped_in_a_row += 1
        if self.skipped_in_a_row < MAX_SKIPPED_IN_A_ROW:
            return
        self._save()  # the weights of step `updated`: skipped steps leave them alone
        raise FinetuneError(
            f"Stopped after step {self.state.completed}: the last {self.skipped_in_a_row} steps had a loss "
            "or gradients that were not finite (NaN or inf) and were skipped, so the weights last changed in "
            f"step {self.updated}; {self.out / LAST} holds them. {self._lower_the_lr()}",
            shared=True,
        )

    def _lower_the_lr(self) -> str:
        args = self.args
        fp32 = " or train in fp32 (--precision fp32)" if self.trainee.step.precision == "bf16" else ""
        return (
            f"Lower the learning rate (--lr {args.lr:g}, --vision-lr {args.vision_lr:g}: try a tenth){fp32} "
            "and start again with a new --out, from the start or from the saved weights (--checkpoint "
            f"{self.out / LAST})."
        )

    def _validate(self) -> None:
        """Score the network now (rank 0) while the other processes wait; keep ``best.pt`` up to date."""
        if not self.validating:
            return
        step = self.state.completed
        self.state.last_validated = step
        self.doing = f"the validation after step {step}"
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
        """Write ``last.pt`` (and the curves) for the steps completed so far (rank 0). Weights that are not
        finite stop every process instead (they are the same everywhere); ``last.pt`` keeps the last save."""
        if not self._weights_finite():
            where = f"{self.out / LAST} holds step {self.saved}" if self.saved else "nothing was saved"
            raise FinetuneError(
                f"Stopped after step {self.state.completed}: the weights are no longer finite (NaN or inf), "
                f"so they were not saved ({where}). {self._lower_the_lr()}",
                shared=True,
            )
        if self.processes.is_main:
            self._write_last()
        self.saved = self.state.completed

    def _write_last(self) -> None:
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

    def _weights_finite(self) -> bool:
        finite = [torch.isfinite(p).all() for p in self.trainee.network.parameters()]
        return bool(torch.stack(finite).all()) if finite else True

    def _given_up(self, problem: str, advice: str, shared: bool = False) -> FinetuneError:
        """Save ``last.pt`` for the steps completed since the last save (rank 0, finite weights) and say
        where the run stands (``shared``: every process stops with this error). A process other than rank 0
        cannot save."""
        self.trainee.step.optimizer.zero_grad(set_to_none=True)  # the failed step's gradients: room to save
        if self.processes.device.type == "cuda":
            # The failed step's activations, held in reference cycles; on the CPU the save needs no room,
            # and a collection here would first wait seconds for a DataLoader worker that raised to end.
            gc.collect()
            torch.cuda.empty_cache()
        progress = self.state.completed > (self.saved or 0)
        if progress and self.processes.is_main and self._weights_finite():
            self._write_last()
            self.saved = self.state.completed
        where = f"{self.out / LAST} holds step {self.saved}." if self.saved else "No step was saved."
        return FinetuneError(f"{_ended(problem)} {where} {advice}", shared=shared)


def _original_message(error: Exception) -> str:
    """The message of an error, without the "Caught ... in DataLoader worker process 0. Original Traceback"
    around it when a DataLoader worker raised it."""
    text = str(error)
    marker = f"{type(error).__name__}: "
    if text.startswith("Caught ") and "Original Traceback" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text


def _ended(text: str) -> str:
    """``text`` ending as a sentence does, so what follows it reads apart."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."
