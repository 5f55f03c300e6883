"""The data check that runs before training: every source scanned, every item the sampler could touch
checked, bad ones skipped with a line each, and one `DataReport` for a person to read.

Checked: the files are there and readable (image headers decoded and verified by Pillow, video files
opened and their frames counted), each annotation readable and the size of the frame it belongs to, and each
video left with an annotated object. ``decode_frames`` also decodes every annotated frame (slow, thorough).
What is still found broken while training (a JPEG cut short after its header) is skipped with a warning by
the sampler, so a long run does not stop on it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from model.training.data.report import DataReport, SourceSummary
from model.training.data.source import Source


def check_sources(
    sources: Sequence[Source], *, workers: int | None = None, decode_frames: bool = False
) -> DataReport:
    """Check every source, keep its usable videos (``source.items``) and report what was skipped and why.

    Arguments:
        sources: opened sources (see `open_source`); each is checked in place.
        workers: threads checking videos at once (None: up to 8, one per CPU).
        decode_frames: decode every annotated frame, not only the headers.
    Returns:
        The `DataReport`. Raises `TrainingDataError` (with the report in its message and ``report``) when no
        source has a usable video left.
    """
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    report = DataReport()
    for source in sources:
        report.problems.extend(source.check(workers=workers, decode_frames=decode_frames))
        frames = sum(len(item.frames) for item in source.items)
        report.sources.append(
            SourceSummary(source.name, source.layout, len(source.items), frames, source.skipped)
        )
    report.raise_if_unusable()
    return report
