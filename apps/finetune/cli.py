"""``python -m apps.finetune``: set a run up (or resume it), train, and say where the checkpoints are.

Exit status: 0 when the run finished (or had finished already), 2 for a problem the message explains (a
flag, a path, the data, the checkpoint, a resume with other arguments; mid-run, a clip that cannot be read,
the device out of memory, steps that stopped learning: ``last.pt`` saved for the steps completed), 130 when
stopped by Ctrl-C or SIGTERM (``last.pt`` saved unless Ctrl-C was pressed twice).

Under torchrun, each part of the setup ends with the processes agreeing (`Processes.together`): a problem
on any process (a node that cannot read ``last.pt``, a GPU out of memory) stops all of them, and rank 0 says
which process had it. A problem that one process meets alone mid-run is printed by that process, after
``[rank r]``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from tqdm import tqdm

from apps.finetune.arguments import parse_arguments, resume_settings
from apps.finetune.checkpoints import BEST, LAST, check_same_settings, read_last, restore_random_states
from apps.finetune.distributed import Processes, start_processes
from apps.finetune.errors import FinetuneError
from apps.finetune.model_setup import build_trainee
from apps.finetune.run import FinetuneRun, Outcome, RunState
from apps.finetune.training_data import TrainingData, load_training_data
from apps.finetune.validation import Validator
from model.loading.precision import PRECISION_ENV, describe_precision, resolve_precision

INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    processes = None
    try:
        processes = start_processes(args.device)
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            return run(args, processes)
    except FinetuneError as error:
        _report(error, processes)
        if error.shared and processes is not None:
            # Every process has it: none leaves before rank 0 has said it (torchrun ends the other processes
            # as soon as one exits).
            processes.barrier()
        return 2
    except KeyboardInterrupt:
        if processes is None or processes.is_main:
            print(
                f"\nStopped at once, without saving: {Path(args.out) / LAST} holds the last save (if any). "
                "Run the same command again to resume from it.",
                file=sys.stderr,
            )
        return INTERRUPTED
    finally:
        if processes is not None:
            processes.close()


def run(args: argparse.Namespace, processes: Processes) -> int:
    """Set up the run, train what is left of it, and print how to use the result."""
    with processes.together():
        precision = _precision(args.precision, processes)
    with processes.together():
        data = load_training_data(args, processes)
        clips_per_step = args.batch_size * args.accumulate * processes.world_size
        total_steps = args.steps if args.steps is not None else data.steps_for(args.epochs, clips_per_step)
        if args.warmup > total_steps:
            raise FinetuneError(f"--warmup {args.warmup} is longer than the run ({total_steps} steps)")
    state = RunState(total_steps, 0, resume_settings(args, total_steps, processes.world_size))
    saved = _saved_run(args, processes, state)
    with processes.together():  # rank 0 alone validates
        validate = args.val is not None and processes.is_main
        validator = Validator(args.val, args.out, precision) if validate else None
    if saved is not None and state.completed >= total_steps:
        _say(processes, f"This run finished already ({total_steps} steps): nothing to do.", result=True)
        _say(processes, usage(args, saved["training"]["config"], state), result=True)
        return 0
    trainee = build_trainee(args, processes, total_steps, precision, saved)
    if saved is not None:
        restore_random_states(saved["training"]["rng"], processes.device)
        del saved
    _say(processes, _plan(args, data, state, processes, precision))
    outcome = FinetuneRun(args, processes, data, trainee, state, validator).train()
    if outcome is Outcome.STOPPED:
        _say(
            processes,
            f"Stopped after step {state.completed} of {total_steps}; saved {Path(args.out) / LAST}. Run the "
            "same command again to resume.",
            result=True,
        )
        return INTERRUPTED
    _say(processes, usage(args, trainee.config, state), result=True)
    return 0


def _precision(requested: str, processes: Processes) -> str:
    try:
        return resolve_precision(requested, processes.device)
    except ValueError as error:
        raise FinetuneError(f"--precision {requested}: {error} (or ${PRECISION_ENV})") from None


def _saved_run(args: argparse.Namespace, processes: Processes, state: RunState) -> dict | None:
    """``last.pt`` of ``--out`` when resuming (checked against the arguments), else None. Every process
    reads it (each needs the optimizer state); all must see the same file."""
    with processes.together():
        saved = read_last(args.out)
    step = None if saved is None else int(saved["training"]["step"])
    main_step = processes.from_main(step)
    with processes.together():
        if main_step != step:
            raise FinetuneError(
                f"The processes see different {Path(args.out) / LAST} files (rank 0: step {main_step}, this "
                f"process: step {step}): --out must be a folder every node sees (a shared file system)."
            )
        if saved is not None:
            check_same_settings(saved["training"]["settings"], state.settings, args.out)
    if saved is None:
        return None
    state.completed = step
    state.best = dict(saved["training"]["best"])
    return saved


def _plan(
    args: argparse.Namespace, data: TrainingData, state: RunState, processes: Processes, precision: str
) -> str:
    clips = args.batch_size * args.accumulate * processes.world_size
    epochs = state.total_steps * clips / max(1, data.num_videos)
    where = f"{processes.world_size} processes" if processes.distributed else "1 process"
    resumed = f"resuming after step {state.completed}; " if state.completed else ""
    return (
        f"{resumed}{_count(state.total_steps, 'step')} of {_count(clips, 'clip')} ({epochs:.3g} epochs of "
        f"{_count(data.num_videos, 'video')}) on {where}, {describe_precision(processes.device, precision)}; "
        f"writing to {args.out}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def usage(args: argparse.Namespace, config: str, state: RunState) -> str:
    """Where the checkpoints are and how to load them in the app, ``build_sam2`` and the official package."""
    out = Path(args.out)
    best = out / BEST
    use = best if state.best.get("jf") is not None and best.is_file() else out / LAST
    if use == best:
        head = f"Best validation J&F {state.best['jf']:.1f} at step {state.best['step']}: {best}\n"
    else:
        head = f"Checkpoint after {state.completed} steps: {out / LAST} (best.pt needs --val)\n"
    size = "" if args.image_size == 1024 else f" --image-size {args.image_size}"
    return (
        head
        + f"Use it in the app:   python app.py --checkpoint {use} --config {config}{size}\n"
        + f'In Python:           build_sam2("{config}", "{use}")  or  '
        + f'build_sam2_video_predictor("{config}", "{use}")\n'
        + f"Training curves:     {out / 'curves.png'}, {out / 'losses.csv'}"
    )


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (a clip that could not be read and was replaced) as one plain line, above the progress bar."""
    tqdm.write(f"warning: {message}", file=sys.stderr)


def _report(error: FinetuneError, processes: Processes | None) -> None:
    """Print an error: once (rank 0) when every process has it, else on the process that met it."""
    if processes is None or not processes.distributed:
        print(f"error: {error}", file=sys.stderr, flush=True)
    elif error.shared:
        if processes.is_main:
            print(f"error: {error}", file=sys.stderr, flush=True)
    else:
        print(f"[rank {processes.rank}] error: {error}", file=sys.stderr, flush=True)


def _say(processes: Processes, text: str, result: bool = False) -> None:
    """Print on rank 0: what the run did and how to use it (``result``) on stdout, the rest on stderr."""
    if processes.is_main:
        print(text, file=sys.stdout if result else sys.stderr, flush=True)
