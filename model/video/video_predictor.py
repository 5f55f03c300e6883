"""Interactive video segmentation with the official ``SAM2VideoPredictor`` API (the per-object predictor).

The predictor checks the arguments, runs the network on the prompted or tracked frame (``model.video.step``)
and hands the output to its bookkeeping (``model.video.predictor_bookkeeping``), which knows which object was
prompted where, which outputs are pending and which are memory, and what to return. Frames come lazily from
``model.video_frames``; outputs live in the state's memory bank (``model.memory_bank``).

Objects are tracked independently (batch size 1 each) and can be added at any time. Clicks on a frame an
object has not been tracked on make it a conditioning frame; clicks on a tracked frame correct it, using the
memory and the earlier logits. Prompt outputs are encoded into memory when propagation starts, and every
non-conditioning frame is recomputed by a propagation, as in the official implementation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch

from model.loading.configs import SAM2Config
from model.loading.hub import locate_checkpoint
from model.network.sam2 import SAM2Model
from model.video.build import build_video_model
from model.video.frame_features import FrameFeatures
from model.video.memory_bank import DEFAULT_RAM_BUDGET_MB
from model.video.memory_cache import DEFAULT_CONDITIONED_FRAMES, DEFAULT_KV_BUDGET_MB, MemoryCache
from model.video.predictor_bookkeeping import (
    PredictorBookkeeping,
    check_frame_index,
    correction_logits,
    drop_prompts,
    frame_scores,
    new_object_undone_on_error,
    object_memory,
    run_frames,
)
from model.video.prompt_inputs import mask_prompt, network_points, point_prompt
from model.video.step import track_objects, track_step
from model.video.tracking import MemoryLayout
from model.video.video_frames import open_frames
from model.video.video_state import VideoState

FrameMasks = tuple[int, list, torch.Tensor]


class SAM2VideoPredictor:
    """Tracks objects through a video from point, box and mask prompts.

    Arguments:
      model: the SAM 2 network (``build_sam2_video_predictor`` builds both).
      fill_hole_area: background holes of at most this many pixels in the low-resolution logits become
        foreground (0 disables; the official postprocessing uses 8).
      non_overlap_masks: returned masks do not overlap (each pixel goes to the highest-scoring object).
      clear_non_cond_mem_around_input: after a prompt, drop the object's tracked (non-conditioning) memory
        within ``num_maskmem`` frames of the prompted frame, so stale memory does not fight the new prompt.
      add_all_frames_to_correct_as_cond: corrections on tracked frames become conditioning frames too (so
        they survive later propagations).
      binarize_mask_from_pts_for_mem_enc: encode clicked frames into memory from the thresholded mask.
      state_ram_budget_mb: per-state budget for stored outputs kept in memory; beyond it the least recently
        used ones go to a temporary folder (``None``: no limit). Results do not depend on it.
      feature_cache_size: how many frames' image features stay cached (recently visited frames: scrubbing
        back and clicking does not re-encode; also bounded by bytes, see `FrameFeatures`).
      prefetch_frames: how many frames ahead of a tracking run a background thread decodes and resizes
        (0: decode on demand only). Results do not depend on it.
      memory_kv_budget_mb: per-state budget for memory keys/values projected once per memory frame and
        reused by the frames that read it (0: project them every time). None: on CUDA only; on a 2-core
        CPU at 1024 input, reading the kept keys/values (about 224 MiB per object and frame) measured 16%
        slower than projecting the 64-channel memories again. Results do not depend on it.
      conditioned_cache_size: how many (object, frame) memory-conditioned features are kept, so that a
        correction click on a tracked frame whose memory is unchanged skips memory attention (0: never).
      batch_objects: track the objects of a frame as one batch (results equal to one by one). None: on
        CUDA only; on a 2-core CPU, 3 objects at 512 input measured 1.90 s a frame batched against 1.64 s
        one by one (the batch's larger working set costs more than it saves there).
    """

    def __init__(
        self,
        model: SAM2Model,
        fill_hole_area: int = 0,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        binarize_mask_from_pts_for_mem_enc: bool = False,
        state_ram_budget_mb: float | None = DEFAULT_RAM_BUDGET_MB,
        feature_cache_size: int = 16,
        prefetch_frames: int = 4,
        memory_kv_budget_mb: float | None = None,
        conditioned_cache_size: int = DEFAULT_CONDITIONED_FRAMES,
        batch_objects: bool | None = None,
    ) -> None:
        self.model = model
        # The five official output flags live in the bookkeeping; the properties below read and set them.
        self.bookkeeping = PredictorBookkeeping(
            model,
            fill_hole_area=fill_hole_area,
            non_overlap_masks=non_overlap_masks,
            clear_non_cond_mem_around_input=clear_non_cond_mem_around_input,
            add_all_frames_to_correct_as_cond=add_all_frames_to_correct_as_cond,
            binarize_mask_from_pts_for_mem_enc=binarize_mask_from_pts_for_mem_enc,
        )
        self.state_ram_budget_mb = state_ram_budget_mb
        self.feature_cache_size = feature_cache_size
        self.prefetch_frames = prefetch_frames
        self.memory_kv_budget_mb = memory_kv_budget_mb
        self.conditioned_cache_size = conditioned_cache_size
        self.batch_objects = batch_objects

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> SAM2VideoPredictor:
        """The predictor for a Hugging Face id (``"facebook/sam2.1-hiera-tiny"``, from the hub or its cache)
        or an official checkpoint file. Keyword arguments go to ``build_sam2_video_predictor``.
        """
        config_name, path = locate_checkpoint(model_id)
        model, options = build_video_model(config_name, path, **kwargs)
        return cls(model, **options)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def image_size(self) -> int:
        return self.model.image_size

    # ------------------------------------------------------------------ the official flags
    @property
    def fill_hole_area(self) -> int:
        return self.bookkeeping.fill_hole_area

    @fill_hole_area.setter
    def fill_hole_area(self, value: int) -> None:
        self.bookkeeping.fill_hole_area = value

    @property
    def non_overlap_masks(self) -> bool:
        return self.bookkeeping.non_overlap_masks

    @non_overlap_masks.setter
    def non_overlap_masks(self, value: bool) -> None:
        self.bookkeeping.non_overlap_masks = value

    @property
    def clear_non_cond_mem_around_input(self) -> bool:
        return self.bookkeeping.clear_non_cond_mem_around_input

    @clear_non_cond_mem_around_input.setter
    def clear_non_cond_mem_around_input(self, value: bool) -> None:
        self.bookkeeping.clear_non_cond_mem_around_input = value

    @property
    def add_all_frames_to_correct_as_cond(self) -> bool:
        return self.bookkeeping.add_all_frames_to_correct_as_cond

    @add_all_frames_to_correct_as_cond.setter
    def add_all_frames_to_correct_as_cond(self, value: bool) -> None:
        self.bookkeeping.add_all_frames_to_correct_as_cond = value

    @property
    def binarize_mask_from_pts_for_mem_enc(self) -> bool:
        return self.bookkeeping.binarize_mask_from_pts_for_mem_enc

    @binarize_mask_from_pts_for_mem_enc.setter
    def binarize_mask_from_pts_for_mem_enc(self, value: bool) -> None:
        self.bookkeeping.binarize_mask_from_pts_for_mem_enc = value

    # ------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(
        self,
        video_path: Any,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> VideoState:
        """Open a video and return its inference state.

        Arguments:
          video_path: anything ``model.video_frames.open_frames`` accepts: a folder of JPEG frames
            ("00000.jpg", ...), any folder of images, a video file, a T,H,W,3 uint8 array or a list of frames.
          offload_video_to_cpu, async_loading_frames: accepted for compatibility; frames are always decoded
            lazily on the CPU (a few ahead of a tracking run, on a background thread) and only the current
            one goes to the device.
          offload_state_to_cpu: keep stored masks and memories on the CPU (saves GPU memory).
        Returns:
          a ``VideoState``; ``state["num_frames"]``, ``state["video_height"]`` etc. work as with the official
          dict.
        """
        del async_loading_frames  # frames are never preloaded, so there is nothing to load in the background
        device = self.device
        frames = open_frames(video_path)
        budget = None if self.state_ram_budget_mb is None else int(self.state_ram_budget_mb * 2**20)
        state = VideoState(
            frames=frames,
            features=FrameFeatures(
                self.model,
                frames,
                device,
                capacity=self.feature_cache_size,
                prefetch_frames=self.prefetch_frames,
            ),
            device=device,
            storage_device=torch.device("cpu") if offload_state_to_cpu else device,
            ram_budget_bytes=budget,
            offload_video_to_cpu=offload_video_to_cpu,
            offload_state_to_cpu=offload_state_to_cpu,
            memory_cache=MemoryCache(self._kv_budget_bytes(device), self.conditioned_cache_size),
        )
        state.features[0]  # the first frame is where users usually click first
        return state

    def _batches_objects(self, device: torch.device) -> bool:
        if self.batch_objects is None:
            return torch.device(device).type == "cuda"
        return self.batch_objects

    def _kv_budget_bytes(self, device: torch.device) -> int:
        budget = self.memory_kv_budget_mb
        if budget is None:
            budget = DEFAULT_KV_BUDGET_MB if torch.device(device).type == "cuda" else 0
        return int(budget * 2**20)

    @torch.inference_mode()
    def reset_state(self, inference_state: VideoState) -> None:
        """Remove every object, prompt and result (the video stays open)."""
        inference_state.reset()

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        inference_state: VideoState,
        frame_idx: int,
        obj_id: Any,
        points=None,
        labels=None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box=None,
    ) -> FrameMasks:
        """Add clicks and/or a box for one object on one frame.

        Arguments:
          points: N, 2 (x, y) pixels of the video frame (or in [0, 1] with ``normalize_coords=False``).
          labels: N ints, 1 positive, 0 negative.
          clear_old_points: replace the object's earlier clicks on this frame instead of adding to them.
          box: x0, y0, x1, y1; placed before the points (needs ``clear_old_points=True``).
        Returns:
          ``(frame_idx, obj_ids, masks)``: the logits of every object on this frame, ``N_obj, 1, H, W``
          fp32 at video resolution on the model's device (objects without an output there are -1024).
        """
        state = inference_state
        frame_idx = check_frame_index(state, frame_idx)
        points, labels = point_prompt(points, labels, box, clear_old_points)
        video_size = (state.video_width, state.video_height) if normalize_coords else None
        points, labels = network_points(points, labels, video_size, self.image_size, state.device)
        with new_object_undone_on_error(state, obj_id) as track:
            if not clear_old_points and frame_idx in track.points:
                old_points, old_labels = track.points[frame_idx]
                points = torch.cat([old_points, points], dim=1)
                labels = torch.cat([old_labels, labels], dim=1)
            is_init_cond_frame, reverse, is_cond = self.bookkeeping.prompt_kind(state, track, frame_idx)
            prev_logits = correction_logits(state, track, frame_idx, is_cond)
            step = track_step(
                self.model,
                state.features[frame_idx],
                frame_idx,
                object_memory(state, track),
                state.num_frames,
                is_init_cond_frame=is_init_cond_frame,
                point_coords=points,
                point_labels=labels,
                prev_mask_logits=prev_logits,
                reverse=reverse,
                run_memory_encoder=False,  # memory is encoded when propagation starts, after all prompts
            )
        track.points[frame_idx] = (points, labels)
        track.masks.pop(frame_idx, None)
        masks = self.bookkeeping.keep_prompt_output(state, track, frame_idx, is_cond, step)
        return frame_idx, state.obj_ids, masks

    def add_new_points(self, *args, **kwargs) -> FrameMasks:
        """Deprecated alias of ``add_new_points_or_box``."""
        return self.add_new_points_or_box(*args, **kwargs)

    @torch.inference_mode()
    def add_new_mask(self, inference_state: VideoState, frame_idx: int, obj_id: Any, mask) -> FrameMasks:
        """Give one object's mask on one frame (a 2-D bool array or tensor of any size).

        The mask is resized to the network input (antialiased bilinear, then >= 0.5) and taken as the output.
        Returns ``(frame_idx, obj_ids, masks)`` as ``add_new_points_or_box`` does.
        """
        state = inference_state
        frame_idx = check_frame_index(state, frame_idx)
        mask_input = mask_prompt(mask, self.image_size, state.device)
        with new_object_undone_on_error(state, obj_id) as track:
            is_init_cond_frame, reverse, is_cond = self.bookkeeping.prompt_kind(state, track, frame_idx)
            step = track_step(
                self.model,
                state.features[frame_idx],
                frame_idx,
                object_memory(state, track),
                state.num_frames,
                is_init_cond_frame=is_init_cond_frame,
                mask=mask_input,
                reverse=reverse,
                run_memory_encoder=False,
            )
        track.masks[frame_idx] = mask_input
        track.points.pop(frame_idx, None)
        masks = self.bookkeeping.keep_prompt_output(state, track, frame_idx, is_cond, step)
        return frame_idx, state.obj_ids, masks

    @torch.inference_mode()
    def clear_all_prompts_in_frame(
        self, inference_state: VideoState, frame_idx: int, obj_id: Any, need_output: bool = True
    ) -> FrameMasks | None:
        """Remove one object's prompts on one frame; its conditioning output there becomes a tracked one.

        Returns ``(frame_idx, obj_ids, masks)`` for that frame, or None with ``need_output=False``.
        """
        state = inference_state
        frame_idx = check_frame_index(state, frame_idx)
        track = state.track(obj_id)  # as the official predictor does, an unknown id becomes a new object
        drop_prompts(track, frame_idx)
        if not need_output:
            return None
        return frame_idx, state.obj_ids, self.bookkeeping.current_frame_masks(state, frame_idx)

    @torch.inference_mode()
    def remove_object(
        self, inference_state: VideoState, obj_id: Any, strict: bool = False, need_output: bool = True
    ) -> tuple[list, list[tuple[int, torch.Tensor]]]:
        """Remove an object; the remaining ones keep their order.

        Returns ``(obj_ids, [(frame_idx, masks), ...])``: the masks of the frames the object had prompts on.
        Raises ``RuntimeError`` for an unknown id if ``strict``.
        """
        state = inference_state
        if state.index_of(obj_id) is None:
            if strict:
                raise RuntimeError(
                    f"cannot remove object id {obj_id}: it does not exist (ids: {state.obj_ids})"
                )
            return state.obj_ids, []
        if len(state.objects) == 1:
            state.reset()
            return state.obj_ids, []
        track = state.objects[state.index_of(obj_id)]
        prompted = set()
        prompted.update(track.points)
        prompted.update(track.masks)
        for frame_idx in prompted:
            self.clear_all_prompts_in_frame(state, frame_idx, obj_id, need_output=False)
        state.remove(obj_id)
        updated = []
        if need_output:
            for frame_idx in prompted:
                updated.append((frame_idx, self.bookkeeping.current_frame_masks(state, frame_idx)))
        return state.obj_ids, updated

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: VideoState) -> None:
        """Encode pending prompt outputs into memory; every object needs a prompted frame."""
        self.bookkeeping.file_pending_outputs(inference_state)

    @torch.inference_mode()
    def propagate_in_video(
        self,
        inference_state: VideoState,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[FrameMasks]:
        """Track every object through the video, yielding ``(frame_idx, obj_ids, masks)`` per frame.

        Arguments:
          start_frame_idx: first frame (default: the earliest prompted frame of any object).
          max_frame_num_to_track: how many frames after the start to go (default: to the end).
          reverse: go backwards from the start (nothing when starting at frame 0).
        ``masks`` is ``N_obj, 1, H, W`` fp32 logits at video resolution on the model's device.
        """
        state = inference_state
        self.propagate_in_video_preflight(state)
        obj_ids = state.obj_ids
        order = run_frames(state, start_frame_idx, max_frame_num_to_track, reverse)
        state.features.prefetch(order)
        for frame_idx in order:
            masks = self._track_frame(state, frame_idx, reverse)
            yield frame_idx, obj_ids, self.bookkeeping.to_video_res(state, masks)

    def _track_frame(self, state: VideoState, frame_idx: int, reverse: bool) -> torch.Tensor:
        """Every object's low-res logits on one frame of a run (``N_obj, 1, h, w`` on the device): the stored
        output on its conditioning frames, else one tracking step from memory, which the frame then keeps."""
        per_object: list[torch.Tensor | None] = []
        to_track = []
        for i, track in enumerate(state.objects):
            if frame_idx in track.cond:
                per_object.append(track.cond[frame_idx].pred_masks.to(state.device))
                self.bookkeeping.forget_memory_near(track, frame_idx)
            else:
                per_object.append(None)
                to_track.append(i)
        features = state.features[frame_idx] if to_track else None
        groups = [to_track] if self._batches_objects(state.device) else [[i] for i in to_track]
        for group in groups:
            steps = track_objects(
                self.model,
                features,
                frame_idx,
                [object_memory(state, state.objects[i]) for i in group],
                state.num_frames,
                reverse=reverse,
            )
            for i, step in zip(group, steps):
                state.objects[i].non_cond[frame_idx], per_object[i] = self.bookkeeping.store(state, step)
        for track in state.objects:
            track.tracked[frame_idx] = reverse
        return torch.cat(per_object, dim=0)

    # ------------------------------------------------------------------ reading the state
    def frame_scores(self, inference_state: VideoState, frame_idx: int) -> dict[Any, tuple[float, float]]:
        """How sure the model was of each object's newest mask on a frame.

        The newest output is a prompt given since the last propagation, else the stored (prompted or
        tracked) one: the output whose mask the last call touching this frame returned.
        Returns:
          object id -> (predicted IoU of the chosen mask, object score logit); the IoU is the decoder's
          estimate (1.0 for a mask prompt), the logit is > 0 where the model judges the object present.
          Objects without an output on the frame are absent.
        """
        return frame_scores(inference_state, frame_idx)

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
        return self.bookkeeping.memory_layout(inference_state, frame_idx, obj_id, reverse)

    def keep_corrections_as_conditioning(self, inference_state: VideoState, enabled: bool | None) -> None:
        """Choose ``add_all_frames_to_correct_as_cond`` for one inference state (None: the predictor's own).

        With True, a prompt on a frame the object was tracked on (a correction) is stored as a conditioning
        frame, like the object's first prompt: later tracking runs return it as given and carry it on in
        every direction. With False (the official default) it is stored as a tracked frame, which the next
        run over it computes again from memory. The choice holds until it is made again (`reset_state`
        keeps it); outputs stored before it keep their kind.
        """
        inference_state.corrections_as_conditioning = enabled


def build_sam2_video_predictor(
    config: str | SAM2Config = "sam2.1_hiera_tiny",
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    mode: str = "eval",
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
    image_size: int | None = None,
    **kwargs,
) -> SAM2VideoPredictor:
    """Build a ``SAM2VideoPredictor``, as the official function of that name does (see
    `model.video.build.build_video_model` for the arguments)."""
    model, options = build_video_model(
        config,
        checkpoint,
        device=device,
        mode=mode,
        apply_postprocessing=apply_postprocessing,
        vos_optimized=vos_optimized,
        image_size=image_size,
        **kwargs,
    )
    return SAM2VideoPredictor(model, **options)
