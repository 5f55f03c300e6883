"""The bookkeeping half of `SAM2VideoPredictor`: how a step's output is stored, filed into memory and turned
into masks at video resolution, and what the state says about a frame (scores, the memory layout).

`PredictorBookkeeping` is part of `SAM2VideoPredictor` (a mixin over its model and options); the module's
functions are the predictor's small helpers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model.images.connected_components import fill_small_holes
from model.network.sam2 import NO_OBJECT_LOGIT
from model.video.memory_bank import FrameOutput, ObjectTrack
from model.video.tracking import (
    MemoryLayout,
    ObjectMemory,
    StepOutput,
    encode_memory,
    memory_layout,
    upscale_to_input,
)
from model.video.video_state import VideoState

OVERLAP_LOSER_MAX_LOGIT = -10.0
"""With ``non_overlap_masks``, an object that does not win a pixel has its logit there capped at -10."""


class PredictorBookkeeping:
    """Part of `SAM2VideoPredictor` (see the module docstring)."""

    def frame_scores(self, inference_state: VideoState, frame_idx: int) -> dict[Any, tuple[float, float]]:
        """How sure the model was of each object's newest mask on a frame.

        The newest output is a prompt given since the last propagation, else the stored (prompted or
        tracked) one: the output whose mask the last call touching this frame returned.
        Returns:
          object id -> (predicted IoU of the chosen mask, object score logit); the IoU is the decoder's
          estimate (1.0 for a mask prompt), the logit is > 0 where the model judges the object present.
          Objects without an output on the frame are absent.
        """
        state = inference_state
        frame_idx = check_frame_index(state, frame_idx)
        ids, scores = [], []
        for track in state.objects:
            out = track.newest_output(frame_idx)
            if out is not None:
                ids.append(track.obj_id)
                scores.append(torch.cat([out.iou.flatten(), out.object_score_logits.flatten()]).float())
        if not scores:
            return {}
        values = torch.stack(scores).tolist()  # one device sync for every object
        return {obj_id: (iou, score) for obj_id, (iou, score) in zip(ids, values)}

    def memory_layout(
        self, inference_state: VideoState, frame_idx: int, obj_id: Any, reverse: bool | None = None
    ) -> MemoryLayout:
        """Which frames an object's memory bank gives ``frame_idx`` when it is tracked (read from the state;
        nothing is computed): its conditioning frames, the recent tracked frames and the object pointers.

        ``reverse``: the tracking direction; None takes the direction tracking last reached the frame in
        (forward if it never did). A prompted frame is not tracked (its prompt decides it), but the layout
        still says what tracking from there would read. Prompts given since the last run count as they
        will once the next run starts (`propagate_in_video_preflight` files them into the memory bank).
        """
        state = inference_state
        frame_idx = check_frame_index(state, frame_idx)
        idx = state.index_of(obj_id)
        if idx is None:
            raise KeyError(f"no object with id {obj_id!r} in this inference state")
        track = state.objects[idx]
        if reverse is None:
            reverse = track.tracked.get(frame_idx, False)
        conditioning = dict.fromkeys(track.cond)
        conditioning.update(dict.fromkeys(track.temp_cond))  # the order the preflight files them in
        stored = (track.non_cond.keys() | track.temp_non_cond.keys()) - conditioning.keys()
        return memory_layout(self.model, frame_idx, conditioning, stored, state.num_frames, reverse)

    def keep_corrections_as_conditioning(self, inference_state: VideoState, enabled: bool | None) -> None:
        """Choose ``add_all_frames_to_correct_as_cond`` for one inference state (None: the predictor's own).

        With True, a prompt on a frame the object was tracked on (a correction) is stored as a conditioning
        frame, like the object's first prompt: later tracking runs return it as given and carry it on in
        every direction. With False (the official default) it is stored as a tracked frame, which the next
        run over it computes again from memory. The choice holds until it is made again (`reset_state`
        keeps it); outputs stored before it keep their kind.
        """
        inference_state.corrections_as_conditioning = enabled

    # ------------------------------------------------------------------ internals
    def _prompt_kind(self, state: VideoState, track: ObjectTrack, frame_idx: int) -> tuple[bool, bool, bool]:
        """For a prompt: (initial conditioning frame?, tracked in reverse?, stored as conditioning?)."""
        is_init_cond_frame = frame_idx not in track.tracked
        reverse = False if is_init_cond_frame else track.tracked[frame_idx]
        as_cond = state.corrections_as_conditioning
        if as_cond is None:
            as_cond = self.add_all_frames_to_correct_as_cond
        return is_init_cond_frame, reverse, is_init_cond_frame or as_cond

    @staticmethod
    def _memory(state: VideoState, track: ObjectTrack) -> ObjectMemory:
        return ObjectMemory(track.cond, track.non_cond, state.memory_pos, state.memory_cache, track)

    def _store(self, state: VideoState, step: StepOutput) -> tuple[FrameOutput, torch.Tensor]:
        """Keep a step's output compactly; also returns the (hole-filled) low-res logits on the device."""
        masks = step.low_res_masks
        if self.fill_hole_area > 0:
            masks = fill_small_holes(masks, self.fill_hole_area)
        memory = None
        if step.maskmem_features is not None:
            memory = step.maskmem_features.to(torch.bfloat16).to(state.storage_device)
            self._keep_memory_pos(state, step.maskmem_pos)
        out = FrameOutput(
            state.vault,
            masks.to(state.storage_device),
            memory,
            step.obj_ptr,
            step.object_score_logits,
            step.iou,
        )
        return out, masks

    @staticmethod
    def _keep_memory_pos(state: VideoState, pos: torch.Tensor) -> None:
        if state.memory_pos is None:
            state.memory_pos = pos[:1].clone()

    def _with_memory(self, state: VideoState, frame_idx: int, out: FrameOutput) -> FrameOutput:
        """Encode a prompted frame's output into memory (the user's prompt decides the mask)."""
        high_res = upscale_to_input(self.model, out.pred_masks.to(state.device))
        features, pos = encode_memory(
            self.model,
            state.features[frame_idx].embedding,
            high_res,
            out.object_score_logits,
            binarize=self.binarize_mask_from_pts_for_mem_enc,
        )
        self._keep_memory_pos(state, pos)
        return out.with_memory(features.to(torch.bfloat16).to(state.storage_device))

    def _clear_memory_around(self, track: ObjectTrack, frame_idx: int) -> None:
        # Tracked memories near a prompt predate it and may contradict it. The prompted frame itself keeps
        # its output: the official legacy predictor dropped a non-conditioning correction here too.
        reach = self.model.num_maskmem
        for t in range(frame_idx - reach, frame_idx + reach + 1):
            if t != frame_idx:
                track.non_cond.pop(t, None)

    def _frame_masks(self, state: VideoState, frame_idx: int, is_cond: bool) -> torch.Tensor:
        """Every object's newest logits on a frame at video resolution (-1024 where an object has none)."""
        height, width = state.video_height, state.video_width
        masks = torch.full(
            (len(state.objects), 1, height, width),
            NO_OBJECT_LOGIT,
            dtype=torch.float32,
            device=state.storage_device,
        )
        for i, track in enumerate(state.objects):
            out = track.latest_output(frame_idx, is_cond)
            if out is None:
                continue
            logits = out.pred_masks
            if tuple(logits.shape[-2:]) != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            masks[i : i + 1] = logits
        return self._to_video_res(state, masks)

    def _to_video_res(self, state: VideoState, masks: torch.Tensor) -> torch.Tensor:
        masks = masks.to(state.device)
        size = (state.video_height, state.video_width)
        if tuple(masks.shape[-2:]) != size:
            masks = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        if self.non_overlap_masks:
            masks = apply_non_overlap(masks)
        return masks


def check_frame_index(state: VideoState, frame_idx: int) -> int:
    """``frame_idx`` as an int, or IndexError naming the video's frame count."""
    frame_idx = int(frame_idx)
    if not 0 <= frame_idx < state.num_frames:
        raise IndexError(f"frame index {frame_idx} is out of range: the video has {state.num_frames} frames")
    return frame_idx


@contextmanager
def new_object_undone_on_error(state: VideoState, obj_id: Any) -> Iterator[ObjectTrack]:
    """The object's track; an object created here is removed again if the block fails."""
    created = state.index_of(obj_id) is None
    track = state.track(obj_id)
    try:
        yield track
    except BaseException:
        if created:
            state.remove(obj_id)
        raise


def cpu_tensor(values, dtype: torch.dtype) -> torch.Tensor:
    """A list, array or tensor as a CPU tensor of ``dtype``."""
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", dtype)
    return torch.as_tensor(np.asarray(values), dtype=dtype)


def apply_non_overlap(masks: torch.Tensor) -> torch.Tensor:
    """Keep each pixel for the highest-scoring object; the others' logits there are capped at -10.

    ``masks``: N_obj, 1, H, W logits.
    """
    if masks.shape[0] == 1:
        return masks
    winner = torch.argmax(masks, dim=0, keepdim=True)  # 1, 1, H, W
    keep = winner == torch.arange(masks.shape[0], device=masks.device)[:, None, None, None]
    return torch.where(keep, masks, masks.clamp(max=OVERLAP_LOSER_MAX_LOGIT))
