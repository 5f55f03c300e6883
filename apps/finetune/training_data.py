"""The training data of a run: every ``--data`` opened and checked before the first step, one report printed,
and the clip sampler that mixes the sources by ``--weight``.

Rank 0 checks the data. The other processes receive only what the check found, the report and each source's
usable videos (names and annotated frames, never the annotations: a COCO or SA-1B JSON stays on disk), open
the same data themselves and build only what reading needs (`Source.restore`). So a data set is scanned once
per run, not once per GPU, and every process samples from the same list of videos.
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

Usable = list[tuple[list[tuple[str, tuple[int, ...]]], int]]  # per source: its usable videos, and skipped


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
    """Open and check every ``--data``; nothing usable raises `FinetuneError`, its message the report."""
    try:
        sources = [open_training_source(path) for path, _ in args.data]
        report = check_sources(sources, decode_frames=args.check_frames)
    except TrainingDataError as error:
        raise FinetuneError(str(error)) from None
    return sources, report


def load_training_data(args: argparse.Namespace, processes: Processes) -> TrainingData:
    """The checked data and its sampler on every process: rank 0 checks and prints the report, the others
    open the data and take the check's result. Its one collective call comes first, on every process; a
    problem after it (data another process cannot open) is that process's `FinetuneError`, for the caller's
    `Processes.together` to stop every process with."""
    checked: tuple[DataReport, Usable] | str | None = None
    sources = None
    if processes.is_main:
        try:
            sources, report = check_data(args)
            checked = (report, [(source.usable(), source.skipped) for source in sources])
        except FinetuneError as error:
            checked = str(error)
    checked = processes.from_main(checked)
    if isinstance(checked, str):
        raise FinetuneError(checked)
    report, usable = checked
    sampler, problem = None, None
    try:
        sources = sources if sources is not None else _reopen(args, usable)
        sampler = _sampler(args, sources)
    except TrainingDataError as error:
        problem = str(error)
    if processes.is_main:
        report.notes.extend(sampler.notes if sampler is not None else [])
        print(report.text(), file=sys.stderr, flush=True)
    if problem is not None:
        raise FinetuneError(problem)
    return TrainingData(sampler, report)


def _reopen(args: argparse.Namespace, usable: Usable) -> list[Source]:
    """The sources of ``--data`` opened here and restricted to the videos rank 0's check found usable."""
    sources = []
    for (path, _), (videos, skipped) in zip(args.data, usable):
        source = open_training_source(path)
        source.restore(videos, skipped)
        sources.append(source)
    return sources


def _sampler(args: argparse.Namespace, sources: list[Source]) -> ClipSampler:
    settings = ClipSettings(
        image_size=args.image_size, frames=args.frames, objects=args.objects, seed=args.seed
    )
    return ClipSampler(sources, [weight for _, weight in args.data], settings)
