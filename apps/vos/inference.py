"""Semi-supervised video object segmentation over a dataset (DAVIS, MOSE, SA-V, LVOS, YouTube-VOS layouts),
computing what SAM 2's official ``tools/vos_inference.py`` computes, resumable and shardable.

    python -m apps.vos.inference --base_video_dir DAVIS/JPEGImages/480p \\
        --input_mask_dir DAVIS/Annotations/480p --video_list_file DAVIS/ImageSets/2017/val.txt \\
        --output_mask_dir out/davis_val --checkpoint sam2.1_hiera_base_plus.pt

Every sub-folder of ``--base_video_dir`` (or every name in ``--video_list_file``) is a video of JPEG frames;
its masks are ``<input_mask_dir>/<video>/<frame>.png`` palette PNGs, or with ``--per_obj_png_file``
``<input_mask_dir>/<video>/<object id>/<frame>.png`` (SA-V). Outputs go to ``<output_mask_dir>/<video>/`` in
the same layout. See `apps.vos.runner` for what is computed.

Resuming: a video is written into ``<output_mask_dir>/.partial/<video>/`` and moved to
``<output_mask_dir>/<video>/`` once complete, so a finished video is skipped by the next run and an
interrupted one is redone from scratch. Run the same command again to resume.

A video whose inputs are wrong (missing masks, masks of the wrong size, no or unreadable JPEG frames) is
reported on one line and skipped; the summary at the end lists it, and the exit status is 1.

Sharding: ``--shard I/N`` takes every N-th video of the list, starting at the I-th (0-based), so N
processes share one dataset and one output folder, each video in exactly one of them:

    # a SLURM array of 8 tasks (sbatch --array=0-7 ...):
    python -m apps.vos.inference ... --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
    # one worker per GPU on a 4-GPU machine:
    for i in 0 1 2 3; do CUDA_VISIBLE_DEVICES=$i python -m apps.vos.inference ... --shard $i/4 & done; wait
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apps.model_loading import DEFAULT_MODEL, ModelLoadError, choose_precision, load_predictor
from apps.vos.masks import VOSInputError, video_folders
from apps.vos.runner import VOSOptions, run_video
from model.errors import VideoSourceError
from model.loading.precision import PRECISION_CHOICES, PRECISION_ENV, describe_precision

PARTIAL = ".partial"
"""Hidden sub-folder of the output folder holding the videos being written (invisible to evaluators)."""


# ---------------------------------------------------------------------------------------------- arguments


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N`` (an ``argparse`` type)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N (e.g. 0/4: the first of 4 shards)")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise argparse.ArgumentTypeError(f"{text!r}: need N >= 1 and 0 <= I < N (shards are numbered from 0)")
    return index, count


def parse_device(text: str) -> str:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N`` (an ``argparse`` type)."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use auto, cpu, cuda, cuda:N or mps")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The command line (the official script's flags, plus model, device, precision and sharding)."""
    parser = argparse.ArgumentParser(
        prog="python -m apps.vos.inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_dataset_arguments(parser.add_argument_group("dataset"))
    _add_inference_arguments(parser.add_argument_group("inference"))
    _add_model_arguments(parser.add_argument_group("model"))
    parser.add_argument(
        "--shard",
        type=parse_shard,
        metavar="I/N",
        help="process only videos I, I+N, I+2N, ... of the list (0 <= I < N): "
        "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT in a SLURM array, or one process per GPU "
        "with CUDA_VISIBLE_DEVICES=i ... --shard i/4",
    )
    return parser


def _add_dataset_arguments(data: argparse._ArgumentGroup) -> None:
    data.add_argument(
        "--base_video_dir", type=Path, required=True, help="one folder of JPEG frames per video"
    )
    data.add_argument("--input_mask_dir", type=Path, required=True, help="one folder of PNG masks per video")
    data.add_argument("--output_mask_dir", type=Path, required=True, help="where the output masks go")
    data.add_argument(
        "--video_list_file",
        type=Path,
        help="text file with one video name per line (default: every sub-folder of --base_video_dir, sorted)",
    )
    data.add_argument(
        "--per_obj_png_file",
        action="store_true",
        help="masks are <video>/<object id>/<frame>.png, one PNG per object (SA-V), for input and output; "
        "objects may overlap",
    )


def _add_inference_arguments(run: argparse._ArgumentGroup) -> None:
    run.add_argument(
        "--track_object_appearing_later_in_video",
        action="store_true",
        help="track each object on its own from its first mask, for datasets whose objects do not all appear "
        "on the first frame (LVOS, YouTube-VOS)",
    )
    run.add_argument(
        "--use_all_masks",
        action="store_true",
        help="prompt with every annotated frame (default: only the first frame's, as VOS evaluation does)",
    )
    run.add_argument("--score_thresh", type=float, default=0.0, help="mask logit threshold (default 0.0)")
    run.add_argument(
        "--apply_postprocessing",
        action="store_true",
        help="the model's hole filling and dynamic multimask fallback (off in SAM 2's evaluations)",
    )


def _add_model_arguments(model: argparse._ArgumentGroup) -> None:
    which = model.add_mutually_exclusive_group()
    which.add_argument("--model", default=DEFAULT_MODEL, help=f"Hugging Face id (default {DEFAULT_MODEL})")
    which.add_argument("--checkpoint", type=Path, help="an official .pt checkpoint file instead of --model")
    model.add_argument("--config", help="config of --checkpoint when its file name does not say it")
    model.add_argument("--image_size", type=int, help="model input size (default: the model's, 1024)")
    model.add_argument("--device", type=parse_device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    model.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help=f"auto: bf16 autocast where the device runs it fast, else fp32 (${PRECISION_ENV} replaces auto)",
    )


# ---------------------------------------------------------------------------------------------- videos


def list_videos(base_video_dir: Path, video_list_file: Path | None = None) -> list[str]:
    """The videos to run: the list file's names (stripped, blank lines and repeats skipped), else the
    sub-folders of ``base_video_dir`` in sorted order (hidden ones ignored)."""
    if video_list_file is not None:
        try:
            lines = Path(video_list_file).read_text().splitlines()
        except OSError as error:
            raise VOSInputError(f"cannot read the video list {video_list_file}: {error}") from error
        return list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if not Path(base_video_dir).is_dir():
        raise VOSInputError(f"the video folder {base_video_dir} does not exist (--base_video_dir)")
    return video_folders(base_video_dir)


def shard(videos: list[str], index: int, count: int) -> list[str]:
    """Shard ``index`` of ``count``: the videos at positions ``k`` with ``k % count == index``."""
    return videos[index::count]


@dataclass
class Summary:
    """What a run did, per video."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        text = f"{len(self.done)} done, {len(self.skipped)} skipped as finished, {len(self.failed)} failed"
        if self.failed:
            text += ": " + "; ".join(f"{name}: {reason}" for name, reason in self.failed.items())
        return text


def process_video(
    predictor: Any, args: argparse.Namespace, video: str, precision: str, bar: Any = None
) -> bool:
    """Run one video into ``.partial`` and move it into place; False if it was already finished.

    Errors propagate (the caller reports them); the half-written folder is removed.
    """
    out_root = Path(args.output_mask_dir)
    final = out_root / video
    if final.exists():
        return False
    partial = out_root / PARTIAL / video
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    options = VOSOptions(
        per_object=args.per_obj_png_file,
        track_later=args.track_object_appearing_later_in_video,
        use_all_masks=args.use_all_masks,
        score_thresh=args.score_thresh,
    )

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        run_video(
            predictor,
            Path(args.base_video_dir) / video,
            Path(args.input_mask_dir) / video,
            partial,
            options,
            precision=precision,
            progress=progress,
            scratch_dir=out_root / PARTIAL,
        )
    except Exception:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(final)
    return True


def describe_error(error: BaseException) -> str:
    """One line for a failed video: our input errors as they are, anything else with its type."""
    text = " ".join(str(error).split())
    if isinstance(error, (VOSInputError, VideoSourceError)):
        return text
    return f"{type(error).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0: every video done or already done, 1: some failed
    or the run could not start, 130: interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        videos = list_videos(args.base_video_dir, args.video_list_file)
    except VOSInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.shard is not None:
        videos = shard(videos, *args.shard)
    where = "" if args.shard is None else f" (shard {args.shard[0]}/{args.shard[1]})"
    if all((Path(args.output_mask_dir) / video).exists() for video in videos):
        print(f"{len(videos)} videos{where}, all done already", file=sys.stderr)
        return run_all(None, args, videos, "fp32")  # reports each as skipped; loads no model
    try:
        predictor = load_predictor(
            args.model,
            args.checkpoint,
            args.config,
            args.device,
            args.image_size,
            apply_postprocessing=args.apply_postprocessing,
            non_overlap_masks=not args.per_obj_png_file,
        )
        precision = choose_precision(args.precision, predictor)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{len(videos)} videos{where}; {describe_precision(predictor.device, precision)}", file=sys.stderr)
    return run_all(predictor, args, videos, precision)


def run_all(predictor: Any, args: argparse.Namespace, videos: list[str], precision: str) -> int:
    """Process ``videos`` in order with progress bars; prints the summary; returns the exit status."""
    summary = Summary()
    video_bar = tqdm(videos, desc="videos", unit="video", file=sys.stderr, position=0)
    frame_bar = tqdm(desc="frames", unit="frame", file=sys.stderr, position=1, leave=False)
    try:
        for video in video_bar:
            video_bar.set_postfix_str(video)
            frame_bar.reset()
            try:
                finished = process_video(predictor, args, video, precision, frame_bar)
            except Exception as error:  # one bad video must not stop the others: report it and go on
                summary.failed[video] = describe_error(error)
                if not isinstance(error, (VOSInputError, VideoSourceError)):  # a bug: show where
                    video_bar.write("".join(traceback.format_exception(error)).rstrip(), file=sys.stderr)
                video_bar.write(f"{video}: failed: {summary.failed[video]}", file=sys.stdout)
                continue
            if finished:
                summary.done.append(video)
            else:
                summary.skipped.append(video)
                video_bar.write(f"{video}: skipped (already done)", file=sys.stdout)
    except KeyboardInterrupt:
        frame_bar.close()
        video_bar.close()
        print(
            f"\ninterrupted: {summary.line()}; run the same command again to resume "
            "(finished videos are kept, the interrupted one is redone)"
        )
        return 130
    frame_bar.close()
    video_bar.close()
    print(summary.line())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
