"""Training data readers: sources of annotated videos and images, the check before training, and the clip
sampler the training loop draws from.

```python
sources = [open_source("data/MOSE/train"), open_source("data/sav_train")]
report = check_sources(sources)        # one report; TrainingDataError if nothing is usable
print(report)
sampler = ClipSampler(sources, weights=[2, 1], settings=ClipSettings(image_size=1024, frames=8, objects=3))
clips = sampler.micro_batch(m, 4)      # micro-batch m: 4 clips of one source, the same in every process
```
"""

from model.training.data.check import check_sources
from model.training.data.coco import CocoSource
from model.training.data.davis import DavisSource
from model.training.data.layouts import ACCEPTED, open_source
from model.training.data.planner import ClipPlan, ClipPlanner
from model.training.data.report import DataReport, Problem, SourceSummary, TrainingDataError
from model.training.data.sa1b import SA1BSource
from model.training.data.sampler import ClipSampler, ClipSettings
from model.training.data.sav import SAVSource
from model.training.data.source import Source, VideoItem
from model.training.data.stream import ClipStream
from model.training.data.transforms import AugmentSettings, ClipTransforms

__all__ = [
    "ACCEPTED",
    "AugmentSettings",
    "ClipPlan",
    "ClipPlanner",
    "ClipSampler",
    "ClipSettings",
    "ClipStream",
    "ClipTransforms",
    "CocoSource",
    "DataReport",
    "DavisSource",
    "Problem",
    "SA1BSource",
    "SAVSource",
    "Source",
    "SourceSummary",
    "TrainingDataError",
    "VideoItem",
    "check_sources",
    "open_source",
]
