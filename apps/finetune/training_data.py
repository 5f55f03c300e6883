"""The training data of a run: every ``--data`` opened and checked before the first step, one report
printed, and the clip sampler that mixes the sources by ``--weight``.

Rank 0 checks the data and hands the checked sources to the other processes, so a data set is scanned
once per run, not once per GPU, and every process samples from the same list of videos.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

from apps.finetune.distributed import Processes
from apps.finetune.errors import FinetuneError
from apps.finetune.session_source import open_training_source
from model.training.data import (
    ClipSampler,
    ClipSettings,
    DataReport,
    Source,
    TrainingDataError,
    check_sources,
)


@dataclass
class TrainingData:
    """The sampler of training clips and the report of the check that preceded it."""

    sampler: ClipSampler
    report: DataReport

    @property
    def num_videos(self) -> int:
        return self.sampler.num_videos

    def steps_for(self, epochs: float, clips_per_step: int) -> int:
        """Steps of ``epochs`` epochs: one clip per usable video is one epoch."""
        return max(1, math.ceil(epochs * self.num_videos / clips_per_step))


def check_data(args: argparse.Namespace) -> tuple[list[Source], DataReport]:
    """Open and check every ``--data``; the report is printed; nothing usable raises `FinetuneError`."""
    try:
        sources = [open_training_source(path) for path, _ in args.data]
        report = check_sources(sources, decode_frames=args.check_frames)
    except TrainingDataError as error:
        raise FinetuneError(str(error)) from None
    print(report.text(), file=sys.stderr, flush=True)
    return sources, report


def load_training_data(args: argparse.Namespace, processes: Processes) -> TrainingData:
    """The checked data and its sampler on every process (rank 0 checks; a refusal stops every process)."""
    checked: tuple[list[Source], DataReport] | str | None = None
    if processes.is_main:
        try:
            checked = check_data(args)
        except FinetuneError as error:
            checked = str(error)
    checked = processes.from_main(checked)
    if isinstance(checked, str):
        raise FinetuneError(checked)
    sources, report = checked
    settings = ClipSettings(
        image_size=args.image_size, frames=args.frames, objects=args.objects, seed=args.seed
    )
    weights = [weight for _, weight in args.data]
    try:
        sampler = ClipSampler(sources, weights, settings)
    except TrainingDataError as error:
        raise FinetuneError(str(error)) from None
    return TrainingData(sampler, report)
