"""Training clips from one source or a weighted mix of several: ``ClipSampler(...).clip(index)``.

Sample ``index`` is made by its own generator, seeded from ``(seed, index)``: the same seed and index give
the same clip in any process, in any order, before or after a resume, so rank ``r`` of ``world`` processes
can take samples ``r::world`` and the run matches one process taking them all. From that generator, in
order: the source (by weight), the video (uniform within the source, as the official datasets), the frames
and objects (`ClipPlanner`), then the augmentation (`ClipTransforms`).

A video whose clip cannot be read (a file damaged after the check) is skipped with a warning and another is
drawn from the same generator, as the official dataset retries; only a source where many in a row fail stops
training, with a `TrainingDataError` that names them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from model.training.batch import Clip
from model.training.data.check import check_sources
from model.training.data.planner import ClipPlan, ClipPlanner
from model.training.data.report import DataReport, TrainingDataError
from model.training.data.source import Source, VideoItem
from model.training.data.transforms import AugmentSettings, ClipTransforms

MAX_VIDEOS = 20  # videos tried for one sample before giving up
SHORT_VIDEOS = ("repeat", "skip")


@dataclass(frozen=True)
class ClipSettings:
    """What a training clip is.

    image_size: S, the square network input. frames: N per clip. objects: K at most per clip.
    augment: the official augmentation (`AugmentSettings`) or a plain resize.
    seed: with the sample index, fixes every random choice of a sample.
    reverse_time_prob: probability of playing a clip backwards (official default 0).
    short_videos: for videos with fewer than N annotated frames (images included): "repeat" plays them
        forward and back to N frames; "skip" leaves them out, as the official sampler does.
    """

    image_size: int = 1024
    frames: int = 8
    objects: int = 3
    augment: bool = True
    seed: int = 0
    reverse_time_prob: float = 0.0
    short_videos: str = "repeat"
    augmentation: AugmentSettings = field(default_factory=AugmentSettings)

    def __post_init__(self) -> None:
        if self.short_videos not in SHORT_VIDEOS:
            raise ValueError(f"short_videos must be one of {SHORT_VIDEOS}, got {self.short_videos!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")


class ClipSampler:
    """Makes training clips from sources mixed by weight.

    Arguments:
        sources: opened sources; those not checked yet are checked here (``report`` keeps the result).
        weights: one positive weight per source (None: equal); a source is picked with probability
            weight / sum of weights, whatever its size.
        settings: `ClipSettings`.
        workers: threads for the check of unchecked sources.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        weights: Sequence[float] | None = None,
        settings: ClipSettings | None = None,
        *,
        workers: int | None = None,
    ) -> None:
        settings = settings or ClipSettings()
        weights = [1.0] * len(sources) if weights is None else [float(w) for w in weights]
        if not sources:
            raise TrainingDataError("no training data given: give at least one source")
        if len(weights) != len(sources) or not all(math.isfinite(w) and w > 0 for w in weights):
            raise ValueError(
                f"give one positive weight per source: {len(sources)} sources, weights {weights}"
            )
        unchecked = [source for source in sources if not source.checked]
        self.report: DataReport | None = check_sources(unchecked, workers=workers) if unchecked else None
        self.settings = settings
        self.planner = ClipPlanner(settings.frames, settings.objects, settings.reverse_time_prob)
        self.transforms = ClipTransforms(
            settings.image_size, settings.augmentation if settings.augment else None
        )
        self.sources: list[Source] = []
        self._items: list[list[VideoItem]] = []
        kept_weights = []
        for source, weight in zip(sources, weights):
            items = self._eligible(source)
            if items:
                self.sources.append(source)
                self._items.append(items)
                kept_weights.append(weight)
        if not self.sources:
            raise TrainingDataError(self._nothing_eligible(sources))
        self.probabilities = np.asarray(kept_weights) / sum(kept_weights)

    def _eligible(self, source: Source) -> list[VideoItem]:
        """The videos of a source a clip can come from (with ``short_videos="skip"``, the long ones)."""
        items = source.items
        if self.settings.short_videos == "skip":
            items = [item for item in items if len(item.frames) >= self.settings.frames]
        if not items:
            warnings.warn(f"{source.name}: no video can give a clip; the source is left out", stacklevel=3)
        return items

    def _nothing_eligible(self, sources: Sequence[Source]) -> str:
        if self.settings.short_videos == "skip":
            return (
                f"No source has a video with {self.settings.frames} annotated frames: ask for fewer frames "
                'per clip, or let short videos play forward and back (short_videos="repeat").'
            )
        names = ", ".join(source.name for source in sources)
        return f"No source has a usable video: {names}; run check_sources to see why."

    @property
    def num_videos(self) -> int:
        """Videos (and images) clips are drawn from, over all sources."""
        return sum(len(items) for items in self._items)

    def generator(self, index: int) -> np.random.Generator:
        """The generator of sample ``index``: seeded from (seed, index), independent of every other sample."""
        if index < 0:
            raise IndexError(f"sample indices start at 0, got {index}")
        return np.random.default_rng([self.settings.seed, int(index)])

    def source_index(self, index: int) -> int:
        """Which source (its place in ``sources``) sample ``index`` comes from (the first draw of `clip`)."""
        return self._pick_source(self.generator(index))

    def _pick_source(self, rng: np.random.Generator) -> int:
        return int(rng.choice(len(self.sources), p=self.probabilities))

    def __getitem__(self, index: int) -> Clip:
        return self.clip(index)

    def clip(self, index: int) -> Clip:
        """Sample ``index``: N frames at S x S and the masks of up to K objects (same index, same clip)."""
        rng = self.generator(index)
        source_at = self._pick_source(rng)
        source, items = self.sources[source_at], self._items[source_at]
        failures = []
        for _ in range(MAX_VIDEOS):
            item = items[int(rng.integers(len(items)))]
            try:
                plan = self.planner.plan(source, item, rng)
                if plan is not None:
                    return self._read(source, item, plan, rng)
                failures.append(f"{item.name}: no clip of it starts on a frame showing an object")
            except TrainingDataError as error:
                warnings.warn(f"sample {index}: {item.name} skipped: {error}", stacklevel=2)
                failures.append(f"{item.name}: {error}")
        raise TrainingDataError(
            f"Sample {index}: no clip could be read from {source.name} after {MAX_VIDEOS} videos; check the "
            "data again (check_sources(..., decode_frames=True)). The last ones:\n  "
            + "\n  ".join(failures[-5:])
        )

    def _read(self, source: Source, item: VideoItem, plan: ClipPlan, rng: np.random.Generator) -> Clip:
        """Read a planned clip's frames and masks and transform them."""
        frames = source.read_frames(item, plan.frames)
        masks: dict[int, np.ndarray] = {}  # frame -> K, H, W (a repeated frame is read once)
        for frame in dict.fromkeys(plan.frames):
            found = source.read_masks(item, frame, plan.objects)
            shape = frames[frame].shape[:2]
            if any(mask.shape != shape for mask in found.values()):
                raise TrainingDataError(f"the masks of frame {frame} are not the size of the frame ({shape})")
            masks[frame] = np.stack([found.get(obj, np.zeros(shape, bool)) for obj in plan.objects])
        images, targets = self.transforms(
            [frames[f] for f in plan.frames], [masks[f] for f in plan.frames], rng
        )
        return Clip(images, targets, plan.objects, f"{source.name}: {item.name}", plan.frames)
