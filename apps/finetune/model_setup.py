"""The network a run trains and what trains it: the starting weights (``--model`` or ``--checkpoint``),
the freeze mode, activation checkpointing, AdamW with the official parameter groups, the cosine schedule
and the `TrainStep` (which wraps the network in DDP when several processes run)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from apps.finetune.distributed import Processes
from apps.finetune.errors import OUT_OF_MEMORY_HINT, FinetuneError, out_of_memory
from apps.model_loading import ModelLoadError, checkpoint_config
from model.errors import CheckpointError, ModelNotAvailableError
from model.loading.build import build_sam2
from model.loading.configs import CONFIGS, resolve_config
from model.loading.hub import locate_checkpoint
from model.network.sam2 import SAM2Model
from model.training.clip_training import ClipTraining
from model.training.freeze import enable_activation_checkpointing, encoder_needs_grad, freeze
from model.training.optimizer import build_optimizer
from model.training.schedule import CosineSchedule
from model.training.train_step import TrainStep


@dataclass
class Trainee:
    """The network being trained (its config name, as ``build_sam2`` takes it) and its `TrainStep`."""

    config: str
    network: SAM2Model
    step: TrainStep


def starting_weights(args: argparse.Namespace) -> tuple[str, Path]:
    """(config name, checkpoint file) to start from: ``--checkpoint`` (its model from ``--config``, its
    name or its weights) or ``--model`` (a Hugging Face id or our model name, from the hub or its cache)."""
    try:
        if args.checkpoint is not None:
            path = Path(args.checkpoint)
            if not path.is_file():
                raise FinetuneError(f"There is no checkpoint file at {path}: check the --checkpoint path.")
            config = resolve_config(args.config).name if args.config else checkpoint_config(path)
            return config, path
        model = CONFIGS[args.model].hf_id if args.model in CONFIGS else args.model
        return locate_checkpoint(model)
    except ModelLoadError as error:
        raise FinetuneError(str(error)) from None
    except ModelNotAvailableError as error:
        raise FinetuneError(
            f"Cannot load {args.model}: {error}\nRun once with internet access so the weights are cached, "
            "or download an official checkpoint and pass --checkpoint PATH."
        ) from None
    except (CheckpointError, ValueError) as error:
        if args.checkpoint is None:
            names = ", ".join(CONFIGS)
            raise FinetuneError(f"--model: {error}; or one of the model names {names}") from None
        flag = "--config" if args.config else "--checkpoint"
        raise FinetuneError(f"{flag}: {error}") from None


def build_network(
    config: str, checkpoint: Path | None, args: argparse.Namespace, device: torch.device
) -> SAM2Model:
    """The network in training mode on ``device`` with the starting weights, frozen as ``--freeze`` says."""
    try:
        network = build_sam2(
            config,
            checkpoint,
            device=device,
            image_size=args.image_size,
            apply_postprocessing=False,
            mode="train",
        )
    except CheckpointError as error:
        raise FinetuneError(f"Cannot use the checkpoint: {error}") from None
    except ValueError as error:
        raise FinetuneError(f"--image-size {args.image_size}: {error}") from None
    freeze(network, args.freeze)
    network.image_encoder.trunk.set_drop_path(args.drop_path)
    if args.activation_checkpointing:
        enable_activation_checkpointing(network)
    return network


def build_trainee(
    args: argparse.Namespace,
    processes: Processes,
    total_steps: int,
    precision: str,
    resume: dict[str, Any] | None = None,
) -> Trainee:
    """Everything that trains, from the starting weights or, resuming, from ``last.pt``'s contents.

    Each process builds its own network, optimizer and schedule, and loads its saved state: a problem
    there on any process (a GPU out of memory, a checkpoint it cannot read) stops every process
    (`Processes.together`). Wrapping the network in DDP, a collective call, comes between the two."""
    with processes.together():
        config, training, optimizer, schedule = _parts(args, processes.device, total_steps, resume)
    step = TrainStep(
        training, optimizer, schedule, seed=args.seed, accumulate=args.accumulate, precision=precision
    )
    with processes.together():
        if resume is not None:
            state = resume["training"]
            with _out_of_memory_said("loading the optimizer state of last.pt"):
                step.load_state_dict({"optimizer": state["optimizer"], "schedule": state["schedule"]})
    return Trainee(config, training.model, step)


def _parts(
    args: argparse.Namespace, device: torch.device, total_steps: int, resume: dict[str, Any] | None
) -> tuple[str, ClipTraining, torch.optim.Optimizer, CosineSchedule]:
    """(config name, the network with its losses, the optimizer, the schedule) of this process."""
    with _out_of_memory_said("the setup (building the network on the device)"):
        if resume is None:
            config, checkpoint = starting_weights(args)
            network = build_network(config, checkpoint, args, device)
        else:  # the saved weights replace the starting ones, which need not be there any more
            config = resume["training"]["config"]
            network = build_network(config, None, args, device)
            network.load_state_dict(resume["model"])
    training = ClipTraining(network, encoder_grad=encoder_needs_grad(network))
    optimizer = build_optimizer(network, lr=args.lr, vision_lr=args.vision_lr)
    try:
        schedule = CosineSchedule(optimizer, total_steps, warmup_steps=args.warmup)
    except ValueError as error:
        raise FinetuneError(f"--warmup {args.warmup}: {error}") from None
    return config, training, optimizer, schedule


@contextmanager
def _out_of_memory_said(during: str) -> Iterator[None]:
    """The device running out of memory as a `FinetuneError` that says what to change."""
    try:
        yield
    except torch.OutOfMemoryError as error:
        message = out_of_memory(error, during)
    else:
        return
    raise FinetuneError(f"{message} {OUT_OF_MEMORY_HINT}")
