"""Combining objects tracked one at a time into palette labels, without holding every object's logits.

The official script keeps the full-resolution logits of every object on every frame, stacks them per frame
(-1024 where an object has no output), keeps each pixel for the object with the highest logit (the others are
capped at -10, ``apply_non_overlap``) and thresholds. The labels that gives can be built one object at a
time, visiting objects in increasing id order:

* if ``score_thresh >= -10``, a capped logit never passes the threshold, so a pixel is labelled with the
  object of highest logit when that logit passes: keep, per frame, the label and the best logit so far where
  some object passed (ties go to the earlier object, as ``argmax`` does);
* otherwise every object passing the threshold keeps its mask, and the palette label is the smallest id
  among them: the first object to pass.

The per-frame label and best logit live in memory-mapped files in a scratch folder, so the process memory
does not grow with the length of the video (the operating system caches what fits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.network.sam2 import NO_OBJECT_LOGIT
from model.video.non_overlap import OVERLAP_LOSER_MAX_LOGIT


class LabelMerger:
    """Per-frame palette labels of objects added one at a time in increasing id order.

    Arguments:
      num_frames, height, width: the video.
      score_thresh: a pixel is in an object's mask where its (constrained) logit is above this.
      scratch: an existing folder for the two memory-mapped arrays (about 5 bytes per pixel and frame).
    """

    def __init__(self, num_frames: int, height: int, width: int, score_thresh: float, scratch: Path) -> None:
        shape = (num_frames, height, width)
        self.score_thresh = float(score_thresh)
        self.exclusive = self.score_thresh >= OVERLAP_LOSER_MAX_LOGIT
        self._labels = np.memmap(Path(scratch) / "labels.u8", np.uint8, "w+", shape=shape)
        self._best = (
            np.memmap(Path(scratch) / "best.f32", np.float32, "w+", shape=shape) if self.exclusive else None
        )
        self._last_id = 0

    def add(self, obj_id: int, frame_idx: int, logits: np.ndarray) -> None:
        """Merge one object's ``H, W`` float32 logits on one frame (objects in increasing id order)."""
        if not 0 < obj_id < 256:
            raise ValueError(f"object id {obj_id} does not fit a palette PNG (1..255)")
        if obj_id < self._last_id:
            raise ValueError(f"objects must be added in increasing id order: {obj_id} after {self._last_id}")
        self._last_id = obj_id
        labels = self._labels[frame_idx]
        passed = logits > self.score_thresh
        if self.exclusive:
            best = self._best[frame_idx]
            take = passed & ((labels == 0) | (logits > best))
            best[take] = logits[take]
        else:
            take = passed & (labels == 0)
        labels[take] = obj_id

    def add_missing(self, obj_id: int, frame_idx: int) -> None:
        """The object has no output on this frame: its logits there are -1024 everywhere."""
        if NO_OBJECT_LOGIT > self.score_thresh:  # only for thresholds below -1024
            shape = self._labels.shape[1:]
            self.add(obj_id, frame_idx, np.full(shape, NO_OBJECT_LOGIT, np.float32))

    def labels(self, frame_idx: int) -> np.ndarray:
        """``H, W`` uint8 labels of one frame (0: background), once every object was added."""
        return np.array(self._labels[frame_idx])

    def close(self) -> None:
        """Drop the memory maps (the caller removes the scratch folder)."""
        self._labels = self._best = None  # type: ignore[assignment]
