"""The flags of ``python -m apps.finetune`` and what they must satisfy.

    python -m apps.finetune --data DAVIS/ --data SA-V/ --weight 0.5 --out runs/davis --epochs 10
    torchrun --nproc_per_node 8 -m apps.finetune --data MOSE/ --out runs/mose --steps 20000 --freeze none

``--weight`` belongs to the ``--data`` just before it (default 1). Defaults follow the official SAM 2.1 MOSE
fine-tuning recipe (learning rates 5e-6 / 3e-6, 8 frames, 3 objects, 1024 pixels, batch 1 per process,
nothing frozen), starting from SAM 2.1 tiny, the size that fine-tunes at 1024 on one 24 GB GPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.model_loading import DEFAULT_MODEL
from model.loading.precision import PRECISION_CHOICES, PRECISION_ENV
from model.training.freeze import FREEZE_MODES

PROG = "python -m apps.finetune"

EPILOG = """\
An epoch is one clip per usable video of the data (an image counts as a 1-frame video), over all --data
together: --epochs E trains ceil(E * videos / (batch size * accumulate * processes)) steps.

Rerun the same command to resume from OUT/last.pt (after Ctrl-C, a crash or a lost job). Files in OUT:
last.pt (weights and training state, saved every --save-every steps, at the end and on Ctrl-C), best.pt
(the weights with the best validation J&F, the starting weights included; only with --val), losses.csv,
validation.csv, curves.png. Several processes (torchrun) need an --out every node sees.
"""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


class _AddData(argparse.Action):
    """``--data PATH``: a new data source, weight 1 until a ``--weight`` follows it."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        sources = list(getattr(namespace, self.dest) or [])
        sources.append([Path(values), 1.0])
        setattr(namespace, self.dest, sources)


class _SetWeight(argparse.Action):
    """``--weight W``: the sampling weight of the ``--data`` just before it."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        sources = getattr(namespace, "data", None)
        if not sources:
            parser.error("--weight must follow the --data it weighs: --data PATH --weight W")
        sources[-1][1] = values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fine-tune SAM 2 on your own videos and images.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_arguments(parser.add_argument_group("data"))
    _add_model_arguments(parser.add_argument_group("model"))
    _add_length_arguments(parser.add_argument_group("how long and how"))
    _add_output_arguments(parser.add_argument_group("output and validation"))
    return parser


def _add_data_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--data",
        action=_AddData,
        metavar="PATH",
        help="training data (repeatable): a DAVIS/MOSE/YouTube-VOS root, an SA-V folder, a COCO JSON, an "
        "SA-1B folder or a sam2-ui session file",
    )
    group.add_argument(
        "--weight",
        action=_SetWeight,
        type=positive_float,
        metavar="W",
        help="how often the --data before it is sampled, relative to the others (default 1)",
    )
    group.add_argument(
        "--frames", type=positive_int, metavar="N", default=8, help="frames per clip (default 8)"
    )
    group.add_argument(
        "--objects", type=positive_int, metavar="K", default=3, help="most objects per clip (default 3)"
    )
    group.add_argument(
        "--workers",
        type=non_negative_int,
        metavar="N",
        default=2,
        help="processes making clips (0: in the training one)",
    )
    group.add_argument(
        "--check-frames",
        action="store_true",
        help="decode every annotated frame in the check before training (slow; default: headers only)",
    )


def _add_model_arguments(group: argparse._ArgumentGroup) -> None:
    start = group.add_mutually_exclusive_group()
    start.add_argument(
        "--model",
        metavar="ID",
        default=DEFAULT_MODEL,
        help=f"Hugging Face id or model name to start from (default {DEFAULT_MODEL})",
    )
    start.add_argument(
        "--checkpoint", type=Path, metavar="PATH", help="an official-format .pt file to start from instead"
    )
    group.add_argument(
        "--config",
        metavar="NAME",
        help="model of --checkpoint, e.g. sam2.1_hiera_small (default: from its name or weights)",
    )
    group.add_argument(
        "--image-size", type=positive_int, metavar="S", default=1024, help="network input size (default 1024)"
    )
    group.add_argument(
        "--freeze",
        choices=FREEZE_MODES,
        default="none",
        help="what does not train: none (default), image-encoder, all-but-heads (only the prompt encoder "
        "and the mask decoder train)",
    )
    group.add_argument(
        "--drop-path",
        type=float,
        metavar="P",
        default=0.1,
        help="stochastic depth of the image encoder's blocks in training, up to P on the last block "
        "(default 0.1, the official fine-tuning recipe; 0 turns it off)",
    )
    group.add_argument(
        "--activation-checkpointing",
        action="store_true",
        help="recompute the image encoder's blocks in the backward pass: less memory, ~30%% slower",
    )
    group.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    group.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help=f"auto: bf16 autocast where the device runs it fast, else fp32 (${PRECISION_ENV} replaces auto)",
    )


def _add_length_arguments(group: argparse._ArgumentGroup) -> None:
    length = group.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, metavar="N", help="optimizer steps to train")
    length.add_argument("--epochs", type=positive_float, metavar="E", help="epochs to train (see below)")
    group.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="B",
        default=1,
        help="clips per micro-batch on each process (default 1)",
    )
    group.add_argument(
        "--accumulate",
        type=positive_int,
        metavar="A",
        default=1,
        help="micro-batches per optimizer step (default 1)",
    )
    group.add_argument("--lr", type=positive_float, default=5e-6, help="peak learning rate (default 5e-6)")
    group.add_argument(
        "--vision-lr",
        type=positive_float,
        default=3e-6,
        help="peak learning rate of the image encoder (default 3e-6)",
    )
    group.add_argument(
        "--warmup", type=non_negative_int, metavar="N", default=0, help="steps of linear warm-up (default 0)"
    )
    group.add_argument(
        "--seed", type=non_negative_int, metavar="N", default=0, help="seed of clips and prompts (default 0)"
    )


def _add_output_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--out", type=Path, metavar="DIR", help="folder of checkpoints and logs (rerun to resume)"
    )
    group.add_argument(
        "--save-every",
        type=positive_int,
        metavar="N",
        default=100,
        help="steps between saves of last.pt (default 100)",
    )
    group.add_argument(
        "--val",
        type=Path,
        metavar="PATH",
        help="validation set: a DAVIS-layout root (JPEGImages, Annotations)",
    )
    group.add_argument(
        "--val-every",
        type=non_negative_int,
        metavar="N",
        default=0,
        help="steps between validations (default 0: before the first step and after the last only)",
    )


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags; a mistake exits with status 2 and a line saying what to change."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for problem in _problems(args):
        parser.error(problem)
    args.data = [(path, float(weight)) for path, weight in args.data]
    return args


def _problems(args: argparse.Namespace) -> list[str]:
    problems = []
    if not args.data:
        problems.append("say what to train on: --data PATH (repeatable)")
    if args.out is None:
        problems.append("say where checkpoints and logs go: --out DIR (rerun with the same DIR to resume)")
    if args.steps is None and args.epochs is None:
        problems.append("say how long to train: --steps N or --epochs E")
    if args.config is not None and args.checkpoint is None:
        problems.append("--config names the model of a --checkpoint file; with --model, leave it out")
    if args.val_every and args.val is None:
        problems.append("--val-every needs a validation set: --val PATH")
    if args.image_size % 32:
        lower, upper = args.image_size // 32 * 32, (args.image_size // 32 + 1) * 32
        choices = f"{lower} or {upper}" if lower else str(upper)
        problems.append(f"--image-size must be a multiple of 32 (the image encoder's stride): try {choices}")
    if not 0.0 <= args.drop_path < 1.0:
        problems.append(f"--drop-path is a probability below 1, got {args.drop_path}: try 0.1, or 0 for none")
    if args.steps is not None and args.warmup > args.steps:
        problems.append(f"--warmup {args.warmup} is longer than the run (--steps {args.steps})")
    return problems[:1]


def resume_settings(args: argparse.Namespace, total_steps: int, world_size: int) -> dict:
    """The arguments a resumed run must share with the run that wrote ``last.pt``: everything that decides
    which clips, prompts and updates the steps compute. ``--out``, ``--val``, ``--val-every``,
    ``--save-every``, ``--workers``, ``--device``, ``--precision`` and ``--activation-checkpointing`` may
    change. So may the number of processes, as long as ``accumulate * processes`` (micro-batches per step)
    stays: 2 processes compute the same steps as 1 process accumulating 2."""
    start = f"checkpoint {args.checkpoint.resolve()}" if args.checkpoint else f"model {args.model}"
    return {
        "start": start,
        "data": [[str(path.resolve()), weight] for path, weight in args.data],
        "steps": int(total_steps),
        "batch_size": args.batch_size,
        "micro_batches_per_step": args.accumulate * world_size,
        "lr": args.lr,
        "vision_lr": args.vision_lr,
        "warmup": args.warmup,
        "freeze": args.freeze,
        "drop_path": args.drop_path,
        "image_size": args.image_size,
        "frames": args.frames,
        "objects": args.objects,
        "seed": args.seed,
    }


SETTING_FLAGS = {
    "start": "--model/--checkpoint",
    "data": "--data/--weight",
    "steps": "--steps/--epochs",
    "batch_size": "--batch-size",
    "micro_batches_per_step": "--accumulate x processes",
    "lr": "--lr",
    "vision_lr": "--vision-lr",
    "warmup": "--warmup",
    "freeze": "--freeze",
    "drop_path": "--drop-path",
    "image_size": "--image-size",
    "frames": "--frames",
    "objects": "--objects",
    "seed": "--seed",
}
"""The flag(s) behind each resume setting, for messages."""
