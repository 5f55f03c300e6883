"""What the engine needs from a video predictor, as typed protocols.

The engine drives `model.SAM2VideoPredictor`, but only through the calls below, so any object with them works
(the official ``sam2`` predictor does too, which the parity tests use). Two extra abilities are optional and
checked with ``isinstance``: per-frame scores (for doubtful-frame flags) and the memory layout (for the memory
view).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

FrameMasks = tuple[int, list[Any], Any]  # frame index, object ids, N, 1, H, W mask logits (a tensor)


@runtime_checkable
class VideoPredictor(Protocol):
    """The official ``SAM2VideoPredictor`` API, as far as the engine uses it."""

    non_overlap_masks: bool  # each pixel goes to one object: a prompt can change other objects' masks

    def init_state(
        self, video_path: Any, offload_video_to_cpu: bool = False, offload_state_to_cpu: bool = False
    ) -> Any: ...

    def reset_state(self, inference_state: Any) -> None: ...

    def add_new_points_or_box(
        self,
        inference_state: Any,
        frame_idx: int,
        obj_id: Any,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: np.ndarray | None = None,
    ) -> FrameMasks: ...

    def add_new_mask(
        self, inference_state: Any, frame_idx: int, obj_id: Any, mask: np.ndarray
    ) -> FrameMasks: ...

    def clear_all_prompts_in_frame(
        self, inference_state: Any, frame_idx: int, obj_id: Any, need_output: bool = True
    ) -> FrameMasks | None: ...

    def remove_object(
        self, inference_state: Any, obj_id: Any, strict: bool = False, need_output: bool = True
    ) -> Any: ...

    def propagate_in_video(
        self,
        inference_state: Any,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[FrameMasks]: ...


@runtime_checkable
class ScoresFrames(Protocol):
    """A predictor that says how sure it was of each object's mask on a frame."""

    def frame_scores(self, inference_state: Any, frame_idx: int) -> dict[Any, tuple[float, float]]: ...


@runtime_checkable
class ChoosesCorrections(Protocol):
    """A predictor whose inference states each choose ``add_all_frames_to_correct_as_cond`` (whether a
    correction on a tracked frame becomes a conditioning frame) instead of the predictor's one setting."""

    def keep_corrections_as_conditioning(self, inference_state: Any, enabled: bool | None) -> None: ...


@runtime_checkable
class ShowsMemory(Protocol):
    """A predictor that says which frames an object's memory gives a frame."""

    def memory_layout(
        self, inference_state: Any, frame_idx: int, obj_id: Any, reverse: bool | None = None
    ) -> Any: ...


def predictor_device(predictor: Any) -> str:
    """The device a predictor runs on (``predictor.device``; the CPU for one that does not say)."""
    return str(getattr(predictor, "device", "cpu"))
