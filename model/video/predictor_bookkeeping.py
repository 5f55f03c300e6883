"""The video predictor's bookkeeping: where a tracking step's output goes in a `VideoState` (pending prompt
outputs, the memory bank), how stored outputs become masks at video resolution, and what the state says about
a frame (scores, the memory layout). The network work is ``model.video.step``; the bookkeeping only encodes
the memory of prompted frames, once propagation starts.

`SAM2VideoPredictor` holds one `PredictorBookkeeping`; the module's functions are helpers on a `VideoState`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from model.images.connected_components import fill_small_holes
from model.network.sam2 import NO_OBJECT_LOGIT, SAM2Model
from model.video.memory_bank import FrameOutput, ObjectTrack
from model.video.non_overlap import apply_non_overlap
from model.video.tracking import (
    MemoryLayout,
    ObjectMemory,
    StepOutput,
    encode_memory,
    memory_layout,
    upscale_to_input,
)
from model.video.video_state import VideoState

PREV_LOGIT_CLAMP = 32.0
"""Earlier logits fed back with correction clicks are clamped to +-32, as the official predictor does."""


class PredictorBookkeeping:
    """Files tracking-step outputs into a `VideoState` and reads masks back; owns the official output flags.

    Arguments:
      model: the SAM 2 network (memory of prompted frames, the memory window ``num_maskmem``).
      fill_hole_area, non_overlap_masks, clear_non_cond_mem_around_input, add_all_frames_to_correct_as_cond,
      binarize_mask_from_pts_for_mem_enc: as `SAM2VideoPredictor` documents them (it reads and sets
        them here).
    """

    def __init__(
        self,
        model: SAM2Model,
        fill_hole_area: int = 0,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        binarize_mask_from_pts_for_mem_enc: bool = False,
    ) -> None:
        self.model = model
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.binarize_mask_from_pts_for_mem_enc = binarize_mask_from_pts_for_mem_enc

    # ------------------------------------------------------------------ prompts
    def prompt_kind(self, state: VideoState, track: ObjectTrack, frame_idx: int) -> tuple[bool, bool, bool]:
        """For a prompt: (initial conditioning frame?, tracked in reverse?, stored as conditioning?)."""
        is_init_cond_frame = frame_idx not in track.tracked
        reverse = False if is_init_cond_frame else track.tracked[frame_idx]
        as_cond = state.corrections_as_conditioning
        if as_cond is None:
            as_cond = self.add_all_frames_to_correct_as_cond
        return is_init_cond_frame, reverse, is_init_cond_frame or as_cond

    def keep_prompt_output(
        self, state: VideoState, track: ObjectTrack, frame_idx: int, is_cond: bool, step: StepOutput
    ) -> torch.Tensor:
        """Keep a prompt's output as pending (filed into memory when propagation starts); returns every
        object's masks on the frame at video resolution."""
        track.temp_outputs(is_cond)[frame_idx], _ = self.store(state, step)
        return self.frame_masks(state, frame_idx, is_cond)

    def file_pending_outputs(self, state: VideoState) -> None:
        """Encode pending prompt outputs into memory and file them; every object needs a prompted frame."""
        if not state.objects:
            raise RuntimeError("no points, box or mask were given for any object; add prompts first")
        for track in state.objects:
            for is_cond in (False, True):
                pending = track.temp_outputs(is_cond)
                for frame_idx, out in pending.items():
                    if not out.has_memory:
                        out = self._with_memory(state, frame_idx, out)
                    track.outputs(is_cond)[frame_idx] = out
                    self.forget_memory_near(track, frame_idx)
                pending.clear()
            if not track.cond:
                raise RuntimeError(
                    f"no points, box or mask were given for object id {track.obj_id}; add prompts first"
                )
            for frame_idx in track.cond:
                track.non_cond.pop(frame_idx, None)

    def forget_memory_near(self, track: ObjectTrack, frame_idx: int) -> None:
        """With ``clear_non_cond_mem_around_input``, drop the object's tracked memory within ``num_maskmem``
        frames of a prompted frame."""
        if not self.clear_non_cond_mem_around_input:
            return
        # Tracked memories near a prompt predate it and may contradict it. The prompted frame itself keeps
        # its output: the official legacy predictor dropped a non-conditioning correction here too.
        reach = self.model.num_maskmem
        for t in range(frame_idx - reach, frame_idx + reach + 1):
            if t != frame_idx:
                track.non_cond.pop(t, None)

    # ------------------------------------------------------------------ outputs
    def store(self, state: VideoState, step: StepOutput) -> tuple[FrameOutput, torch.Tensor]:
        """Keep a step's output compactly; also returns the (hole-filled) low-res logits on the device."""
        masks = step.low_res_masks
        if self.fill_hole_area > 0:
            masks = fill_small_holes(masks, self.fill_hole_area)
        memory = None
        if step.maskmem_features is not None:
            memory = step.maskmem_features.to(torch.bfloat16).to(state.storage_device)
            _keep_memory_pos(state, step.maskmem_pos)
        out = FrameOutput(
            state.vault,
            masks.to(state.storage_device),
            memory,
            step.obj_ptr,
            step.object_score_logits,
            step.iou,
        )
        return out, masks

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
        _keep_memory_pos(state, pos)
        return out.with_memory(features.to(torch.bfloat16).to(state.storage_device))

    # ------------------------------------------------------------------ masks
    def frame_masks(self, state: VideoState, frame_idx: int, is_cond: bool) -> torch.Tensor:
        """Every object's newest logits on a frame at video resolution (-1024 where an object has none).

        ``is_cond``: whether a pending output of the frame counts as conditioning (the kind it was kept as).
        """
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
        return self.to_video_res(state, masks)

    def current_frame_masks(self, state: VideoState, frame_idx: int) -> torch.Tensor:
        """`frame_masks` when no prompt is being given (after one was removed): pending outputs count as
        conditioning where some object has a pending conditioning output on the frame."""
        is_cond = any(frame_idx in t.temp_cond for t in state.objects)
        return self.frame_masks(state, frame_idx, is_cond)

    def to_video_res(self, state: VideoState, masks: torch.Tensor) -> torch.Tensor:
        """N_obj, 1, h, w logits at video resolution on the state's device (non-overlapping if asked)."""
        masks = masks.to(state.device)
        size = (state.video_height, state.video_width)
        if tuple(masks.shape[-2:]) != size:
            masks = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        if self.non_overlap_masks:
            masks = apply_non_overlap(masks)
        return masks

    # ------------------------------------------------------------------ reading the state
    def memory_layout(
        self, state: VideoState, frame_idx: int, obj_id: Any, reverse: bool | None
    ) -> MemoryLayout:
        """What `SAM2VideoPredictor.memory_layout` returns (read from the state; nothing is computed)."""
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


def frame_scores(state: VideoState, frame_idx: int) -> dict[Any, tuple[float, float]]:
    """What `SAM2VideoPredictor.frame_scores` returns: object id -> (predicted IoU, object score logit) of the
    newest output on a frame."""
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


def correction_logits(
    state: VideoState, track: ObjectTrack, frame_idx: int, is_cond: bool
) -> torch.Tensor | None:
    """The object's earlier logits on the frame, clamped, fed back with a correction (None if it has none)."""
    prev = track.latest_output(frame_idx, is_cond)
    if prev is None:
        return None
    return prev.pred_masks.to(state.device).clamp(-PREV_LOGIT_CLAMP, PREV_LOGIT_CLAMP)


def run_frames(
    state: VideoState, start_frame_idx: int | None, max_frame_num_to_track: int | None, reverse: bool
) -> range:
    """The frames a tracking run visits, in order (see `SAM2VideoPredictor.propagate_in_video`)."""
    if start_frame_idx is None:
        start_frame_idx = min(t for track in state.objects for t in track.cond)
    start_frame_idx = check_frame_index(state, start_frame_idx)
    if max_frame_num_to_track is None:
        max_frame_num_to_track = state.num_frames
    if reverse:
        end = max(start_frame_idx - max_frame_num_to_track, 0)
        return range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
    end = min(start_frame_idx + max_frame_num_to_track, state.num_frames - 1)
    return range(start_frame_idx, end + 1)


def drop_prompts(track: ObjectTrack, frame_idx: int) -> None:
    """Forget the object's prompts and pending outputs on a frame; its conditioning output there becomes a
    tracked one (which the next run over the frame computes again)."""
    track.points.pop(frame_idx, None)
    track.masks.pop(frame_idx, None)
    track.temp_cond.pop(frame_idx, None)
    track.temp_non_cond.pop(frame_idx, None)
    out = track.cond.pop(frame_idx, None)
    if out is not None:
        track.non_cond[frame_idx] = out
        track.tracked.pop(frame_idx, None)


def object_memory(state: VideoState, track: ObjectTrack) -> ObjectMemory:
    """What a tracking step of the object reads: its memory bank and the state's shared memory work."""
    return ObjectMemory(track.cond, track.non_cond, state.memory_pos, state.memory_cache, track)


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


def _keep_memory_pos(state: VideoState, pos: torch.Tensor) -> None:
    # The position encoding of a memory frame is the same for every frame and object: kept once.
    if state.memory_pos is None:
        state.memory_pos = pos[:1].clone()
