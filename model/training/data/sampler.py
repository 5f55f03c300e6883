"""Training clips from one source or a weighted mix of several: ``ClipSampler(...).micro_batch(m, B)``.

Micro-batch ``m`` (numbered run-wide) holds B clips of one source, picked by weight; its clips have one
length: N frames from a source of videos, 1 from a source of images, as the official trainer runs images as
1-frame clips in batches of their own. `ClipStream` says which video each clip takes (a seeded permutation
per epoch of its source). Clip ``c`` of micro-batch ``m`` is made by its own generator, seeded from
``(seed, m, c)``: its frames and objects (`ClipPlanner`), then its augmentation (`ClipTransforms`). So the
same seed and numbers give the same clip in any process, in any order, before or after a resume, and rank
``r`` of ``world`` processes taking micro-batches ``r::world`` matches one process taking them all.

Videos with fewer than N annotated frames are left out, as the official sampler does; when no video of the
data is that long, they play forward and back to N frames instead, and ``notes`` says so.

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
from model.training.data.stream import CLIP, ClipStream
from model.training.data.transforms import AugmentSettings, ClipTransforms

MAX_VIDEOS = 20  # videos tried for one clip before giving up
SHORT_VIDEOS = ("skip", "repeat")


@dataclass(frozen=True)
class ClipSettings:
    """What a training clip is.

    image_size: S, the square network input. frames: N per clip. objects: K at most per clip.
    augment: the official augmentation (`AugmentSettings`) or a plain resize.
    seed: with a clip's micro-batch and place in it, fixes every random choice of the clip.
    reverse_time_prob: probability of playing a clip backwards (official default 0).
    short_videos: for videos with fewer than N annotated frames: "skip" leaves them out, as the official
        sampler does (unless no video is N frames long: then they play as with "repeat"); "repeat" plays them
        forward and back to N frames. Images are 1-frame clips either way.
    """

    image_size: int = 1024
    frames: int = 8
    objects: int = 3
    augment: bool = True
    seed: int = 0
    reverse_time_prob: float = 0.0
    short_videos: str = "skip"
    augmentation: AugmentSettings = field(default_factory=AugmentSettings)

    def __post_init__(self) -> None:
        if self.short_videos not in SHORT_VIDEOS:
            raise ValueError(f"short_videos must be one of {SHORT_VIDEOS}, got {self.short_videos!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")


class ClipSampler:
    """Makes the micro-batches of training clips from sources mixed by weight.

    Arguments:
        sources: opened sources; those not checked yet are checked here (``report`` keeps the result).
        weights: one positive weight per source (None: equal); a micro-batch draws from a source with
            probability weight / sum of weights, whatever its size.
        settings: `ClipSettings`.
        workers: threads for the check of unchecked sources.

    ``notes``: what the sampler decided about the data, for the report (sources or videos left out, short
    videos played forward and back); added to ``report`` when the sampler made it.
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
        self.video_planner = ClipPlanner(settings.frames, settings.objects, settings.reverse_time_prob)
        self.image_planner = ClipPlanner(1, settings.objects)
        self.transforms = ClipTransforms(
            settings.image_size, settings.augmentation if settings.augment else None
        )
        self.notes: list[str] = []
        self.repeat_short = self._repeats_short_videos(sources)
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
            names = ", ".join(source.name for source in sources)
            raise TrainingDataError(f"No source has a usable video: {names}; run check_sources to see why.")
        self.probabilities = np.asarray(kept_weights) / sum(kept_weights)
        self.stream = ClipStream([len(items) for items in self._items], self.probabilities, settings.seed)
        if self.report is not None:
            self.report.notes.extend(self.notes)

    def _repeats_short_videos(self, sources: Sequence[Source]) -> bool:
        """Whether videos shorter than N play forward and back: asked for, or no video is N frames long."""
        if self.settings.short_videos == "repeat":
            return True
        frames = self.settings.frames
        lengths = [len(item.frames) for source in sources if not source.images for item in source.items]
        if not lengths or max(lengths) >= frames:
            return False
        self.notes.append(
            f"No video has {frames} annotated frames: videos play forward and back to {frames} frames (their "
            "motion reverses within a clip); ask for fewer frames per clip to train on motion as filmed."
        )
        return True

    def _eligible(self, source: Source) -> list[VideoItem]:
        """The videos of a source a clip can come from (videos shorter than N left out unless repeated)."""
        if source.images or self.repeat_short:
            return source.items
        frames = self.settings.frames
        items = [item for item in source.items if len(item.frames) >= frames]
        short = len(source.items) - len(items)
        if not items:
            self.notes.append(f"{source.name}: no video has {frames} annotated frames: source left out")
        elif short:
            self.notes.append(
                f"{source.name}: {short} of {len(source.items)} videos have fewer than {frames} annotated "
                "frames: left out, as the official sampler does"
            )
        return items

    @property
    def num_videos(self) -> int:
        """Videos (and images) clips are drawn from, over all sources."""
        return sum(len(items) for items in self._items)

    def source_of(self, micro_batch: int) -> int:
        """Which source (its place in ``sources``) micro-batch ``micro_batch`` draws its clips from."""
        if micro_batch < 0:
            raise IndexError(f"micro-batches are numbered from 0, got {micro_batch}")
        return self.stream.source_of(micro_batch)

    def generator(self, micro_batch: int, position: int) -> np.random.Generator:
        """The generator of one clip, seeded from (seed, micro-batch, position): independent of the others."""
        return np.random.default_rng([CLIP, self.settings.seed, int(micro_batch), int(position)])

    def micro_batch(self, micro_batch: int, batch_size: int) -> list[Clip]:
        """The ``batch_size`` clips of micro-batch ``micro_batch``, all from one source, of one length."""
        return [self.clip(micro_batch, position, batch_size) for position in range(batch_size)]

    def clip(self, micro_batch: int, position: int = 0, batch_size: int = 1) -> Clip:
        """Clip ``position`` of micro-batch ``micro_batch`` of ``batch_size`` clips: T frames at S x S (T: 1
        for images, N for videos) and the masks of up to K objects. The same numbers give the same clip."""
        source_at, video = self.stream.video_of(micro_batch, position, batch_size)
        source, items = self.sources[source_at], self._items[source_at]
        planner = self.image_planner if source.images else self.video_planner
        rng = self.generator(micro_batch, position)
        failures = []
        for attempt in range(MAX_VIDEOS):  # the stream's video, then others drawn at random
            item = items[video] if attempt == 0 else items[int(rng.integers(len(items)))]
            try:
                plan = planner.plan(source, item, rng)
                if plan is not None:
                    return self._read(source, item, plan, rng)
                failures.append(f"{item.name}: no clip of it starts on a frame showing an object")
            except TrainingDataError as error:
                where = f"micro-batch {micro_batch}, clip {position}"
                warnings.warn(f"{where}: {item.name} skipped: {error}", stacklevel=2)
                failures.append(f"{item.name}: {error}")
        raise TrainingDataError(
            f"Micro-batch {micro_batch}, clip {position}: no clip could be read from {source.name} after "
            f"{MAX_VIDEOS} videos; check the data again (check_sources(..., decode_frames=True)). The last "
            "ones:\n  " + "\n  ".join(failures[-5:])
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
