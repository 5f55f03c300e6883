"""What a tracked frame reads from an object's memory bank, and how memory frames are encoded.

Temporal layout of the memory for frame ``t`` (forward; mirrored when tracking in reverse):
  * every conditioning frame of the object, future ones included, at temporal slot 0;
  * the frames ``t-6 .. t-1`` that hold a non-conditioning output, at slots 1 (oldest) .. 6 (newest);
  * object pointers of the conditioning frames up to ``t`` and of the non-conditioning frames ``t-1 .. t-15``.

The selection is index-only (`spatial_memory_frames`, `pointer_frames`), so `memory_layout` can show it
without touching a tensor; `read_memory` names the stored outputs, `memory_tokens` assembles their tokens.
The step itself (memory attention, heads, memory encoder) is `model.video.step`.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from model.network.position_encoding import sine_encoding_1d
from model.network.sam2 import SAM2Model
from model.video.memory_cache import MemoryCache


class MemoryEntry(Protocol):
    """What the step reads from one stored frame output."""

    @property
    def maskmem_features(self) -> torch.Tensor | None: ...  # 1, 64, h, w (bf16 as stored)

    @property
    def obj_ptr(self) -> torch.Tensor: ...  # 1, 256


@dataclass
class ObjectMemory:
    """The part of one object's memory bank that a step may read.

    ``conditioning`` is ordered as the frames were added (the order only fixes the token order, which the
    official implementation also uses, so results stay bit-identical). ``memory_pos`` is the sine position
    encoding of a memory frame, ``1, 64, h, w``, the same for every frame and object.
    """

    conditioning: Mapping[int, MemoryEntry]
    non_conditioning: Mapping[int, MemoryEntry]
    memory_pos: torch.Tensor | None
    cache: MemoryCache | None = None  # reuse of memory work (`model.video.memory_cache`); None: none
    owner: Any = None  # the object this memory belongs to (a key of the cache's conditioned features)


@dataclass
class StepOutput:
    """The result of one step: fp32 mask logits; ``maskmem_features`` fp32, or None if not encoded.

    ``iou`` is the decoder's predicted IoU of the chosen mask (1 for a mask prompt).
    """

    low_res_masks: torch.Tensor  # 1, 1, S/4, S/4
    high_res_masks: torch.Tensor  # 1, 1, S, S
    obj_ptr: torch.Tensor  # 1, 256
    object_score_logits: torch.Tensor  # 1, 1
    iou: torch.Tensor  # 1, 1
    maskmem_features: torch.Tensor | None = None  # 1, 64, h, w
    maskmem_pos: torch.Tensor | None = None  # 1, 64, h, w


def sequence_first(x: torch.Tensor) -> torch.Tensor:
    """B, C, h, w  ->  hw, B, C (the sequence-first layout of the memory attention)."""
    return x.flatten(2).permute(2, 0, 1)


def spatial_memory_frames(
    frame_idx: int, conditioning: Iterable[int], stored: Container[int], num_maskmem: int, reverse: bool
) -> list[tuple[int, int]]:
    """(temporal slot, frame) of the memories a frame attends to: every conditioning frame at slot 0, then
    the stored non-conditioning frames among the ``num_maskmem - 1`` just before it (slot 1 the oldest)."""
    pairs = [(0, t) for t in conditioning]
    step = 1 if reverse else -1  # direction of "the past"
    for slot in range(1, num_maskmem):
        t = frame_idx + step * (num_maskmem - slot)
        if t in stored:
            pairs.append((slot, t))
    return pairs


def pointer_frames(
    frame_idx: int,
    conditioning: Iterable[int],
    stored: Container[int],
    num_frames: int,
    max_ptrs: int,
    reverse: bool,
    future_conditioning: bool = False,
) -> list[tuple[int, int, bool]]:
    """(signed temporal offset, frame, is a conditioning frame) of the object pointers a frame attends to:
    the conditioning frames up to it (in tracking order), then the stored frames among the ``max_ptrs - 1``
    just before it. ``future_conditioning``: every conditioning frame, later ones too (negative offsets), as
    the network reads them in training."""
    sign = -1 if reverse else 1
    pairs = []
    for t in conditioning:
        in_past = t >= frame_idx if reverse else t <= frame_idx
        if in_past or future_conditioning:
            pairs.append(((frame_idx - t) * sign, t, True))
    for distance in range(1, max_ptrs):
        t = frame_idx + distance if reverse else frame_idx - distance
        if t < 0 or t >= num_frames:
            break
        if t in stored:
            pairs.append((distance, t, False))
    return pairs


@dataclass(frozen=True)
class MemoryLayout:
    """What one object's memory bank gives a frame: the frames behind each part of the memory.

    ``conditioning``: prompted frames (slot 0, every one, in the order they were added); ``recent``:
    (slot, frame) of the tracked frames just before it (slot 1 the oldest); ``pointers``: frames whose object
    pointers it reads. ``reverse``: whether "before" means later frames (tracked backwards).
    """

    frame: int
    reverse: bool
    conditioning: tuple[int, ...]
    recent: tuple[tuple[int, int], ...]
    pointers: tuple[int, ...]


def memory_layout(
    model: SAM2Model,
    frame_idx: int,
    conditioning: Iterable[int],
    stored: Container[int],
    num_frames: int,
    reverse: bool,
) -> MemoryLayout:
    """The frames `read_memory` would name for ``frame_idx`` (same selection, no tensors touched)."""
    conditioning = tuple(conditioning)
    spatial = spatial_memory_frames(frame_idx, conditioning, stored, model.num_maskmem, reverse)
    max_ptrs = min(num_frames, model.max_obj_ptrs_in_encoder)
    pointers = pointer_frames(frame_idx, conditioning, stored, num_frames, max_ptrs, reverse)
    return MemoryLayout(
        frame=frame_idx,
        reverse=reverse,
        conditioning=conditioning,
        recent=tuple((slot, t) for slot, t in spatial if slot > 0),
        pointers=tuple(t for _, t, _ in pointers),
    )


@dataclass(frozen=True)
class MemoryRead:
    """The stored outputs one frame's memory is made of, as tracking selects them.

    ``spatial``: (temporal slot, frame, output) of the memory frames, conditioning ones first;
    ``pointers``: (signed temporal offset, frame, output) of the object pointers.
    """

    frame: int
    reverse: bool
    num_frames: int
    spatial: tuple[tuple[int, int, MemoryEntry], ...]
    pointers: tuple[tuple[int, int, MemoryEntry], ...]


def read_memory(
    model: SAM2Model,
    frame_idx: int,
    memory: ObjectMemory,
    num_frames: int,
    reverse: bool,
    future_conditioning: bool = False,
) -> MemoryRead:
    """Select what a non-initial frame reads from an object's memory bank (no tensor is touched).

    ``future_conditioning``: the pointers of later conditioning frames are read too (training does)."""
    if not memory.conditioning:
        raise RuntimeError("an object must have a conditioning frame before it can be tracked")
    cond, non_cond = memory.conditioning, memory.non_conditioning
    spatial = tuple(
        (slot, t, cond[t] if slot == 0 else non_cond[t])
        for slot, t in spatial_memory_frames(frame_idx, cond, non_cond, model.num_maskmem, reverse)
    )
    max_ptrs = min(num_frames, model.max_obj_ptrs_in_encoder)
    pointers = tuple(
        (offset, t, (cond if is_cond else non_cond)[t])
        for offset, t, is_cond in pointer_frames(
            frame_idx, cond, non_cond, num_frames, max_ptrs, reverse, future_conditioning
        )
    )
    return MemoryRead(frame_idx, reverse, num_frames, spatial, pointers)


def pointer_memory(
    model: SAM2Model, read: MemoryRead, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The object-pointer tokens of a read and their positions, ``4 N, 1, 64`` each (None if no pointer)."""
    if not read.pointers:
        return None
    offsets = [offset for offset, _, _ in read.pointers]
    if not model.use_signed_tpos_enc_to_obj_ptrs:
        offsets = [abs(o) for o in offsets]
    obj_ptrs = torch.stack([entry.obj_ptr for _, _, entry in read.pointers], dim=0)  # N, 1, 256
    n, batch, hidden = obj_ptrs.shape
    mem_dim = model.mem_dim
    if model.add_tpos_enc_to_obj_ptrs:
        # Offsets normalised by the largest one a pointer can have; a 1-frame video has no such offset.
        max_ptrs = min(read.num_frames, model.max_obj_ptrs_in_encoder)
        rel = torch.tensor(offsets, device=device) / max(max_ptrs - 1, 1)
        ptr_pos = model.obj_ptr_tpos_proj(sine_encoding_1d(rel, hidden))  # N, 64
        ptr_pos = ptr_pos.unsqueeze(1).expand(-1, batch, mem_dim)
    else:
        ptr_pos = obj_ptrs.new_zeros(n, batch, mem_dim)
    # Each 256-d pointer becomes 4 tokens of 64 channels that share the pointer's position.
    split = hidden // mem_dim
    tokens = obj_ptrs.reshape(n, batch, split, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
    return tokens.to(dtype), ptr_pos.repeat_interleave(split, dim=0)


def memory_tokens(
    model: SAM2Model,
    read: MemoryRead,
    memory_pos: torch.Tensor,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The tokens of a memory read, as memory attention takes them.

    Returns:
      memory ``M, B, 64`` and its position encoding ``M, B, 64`` (spatial tokens first, then 4 tokens per
      object pointer), and the number of pointer tokens at the end. B is 1 when tracking; training reads
      the memories of a batch of objects at once.
    """
    num_maskmem = model.num_maskmem
    frame_pos = sequence_first(memory_pos.to(device))  # h*w, 1, 64
    tokens, positions = [], []
    for slot, _, entry in read.spatial:
        # Stored bf16; bf16 -> fp32 is exact, and casting here keeps fp32 models running when no pointer
        # follows (the official code fails there with a dtype mismatch).
        features = sequence_first(entry.maskmem_features.to(device=device, dtype=dtype))  # h*w, B, 64
        tokens.append(features)
        positions.append((frame_pos + model.maskmem_tpos_enc[num_maskmem - 1 - slot]).expand_as(features))
    pointers = pointer_memory(model, read, dtype, device)
    num_ptr_tokens = 0
    if pointers is not None:
        tokens.append(pointers[0])
        positions.append(pointers[1])
        num_ptr_tokens = pointers[0].shape[0]
    return torch.cat(tokens, dim=0), torch.cat(positions, dim=0), num_ptr_tokens


def encode_memory(
    model: SAM2Model,
    embedding: torch.Tensor,
    high_res_masks: torch.Tensor,
    object_score_logits: torch.Tensor,
    binarize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A new memory frame from the raw image features and the predicted high-resolution logits.

    Arguments:
      embedding: B, 256, h, w raw backbone features (no memory, no ``no_mem_embed``).
      high_res_masks: B, 1, S, S mask logits.
      object_score_logits: B, 1; an absent object's memory gets ``no_obj_embed_spatial`` (SAM 2.1).
      binarize: use the thresholded mask instead of its sigmoid (frames the user clicked on, when the
        postprocessing option ``binarize_mask_from_pts_for_mem_enc`` is set).
    Returns:
      ``features`` B, 64, h, w (fp32; the bank stores them as bf16) and their position encoding.
    """
    mask = (high_res_masks > 0).float() if binarize else torch.sigmoid(high_res_masks)
    mask = mask * model.sigmoid_scale_for_mem_enc + model.sigmoid_bias_for_mem_enc
    # The backbone leaves the features channels-last; the official hands the encoder a view of its
    # sequence-first tokens that torch does not take for channels-last, so its convolutions run on an NCHW
    # copy. The layout picks the CPU convolution kernel, whose bf16 sums round differently (measured under
    # autocast: memory features 0.016 apart); the same layout gives the official bits.
    features, pos = model.memory_encoder(embedding.contiguous(), mask, skip_mask_sigmoid=True)
    if model.no_obj_embed_spatial is not None:
        absent = 1 - (object_score_logits > 0).float()  # B, 1
        features = features + absent[..., None, None] * model.no_obj_embed_spatial[..., None, None]
    return features, pos


def upscale_to_input(model: SAM2Model, low_res_masks: torch.Tensor) -> torch.Tensor:
    """Low-resolution logits ``B, 1, S/4, S/4`` bilinearly resized to the network input size."""
    size = (model.image_size, model.image_size)
    return F.interpolate(low_res_masks, size=size, mode="bilinear", align_corners=False)
