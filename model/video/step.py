"""One tracking step of SAM 2 video: one frame, one object or several objects at once.

A step conditions the frame's image features on the object's memory (memory attention, `model.video.tracking`
selects what is read), runs the SAM heads, and optionally encodes the prediction into a new memory frame. It
holds no state: what it reads comes in through ``ObjectMemory``, what it produces goes out as ``StepOutput``;
the predictor decides what to keep. With a `MemoryCache` in the memory, a frame whose memory did not change
since it was last conditioned (a correction click on a tracked frame) reuses that result instead of running
memory attention again.

Memory attention reads an object's memory as cross-attention keys and values, which come from one function,
`memory_keys_values`: a read's memory tokens projected whole, one product per layer, exactly what the
official projects (`tracking.memory_tokens`); or, when the cache keeps keys and values, each memory frame
projected once and reused.

Several objects tracked on the same frame go through memory attention, the heads and the memory encoder as
one batch (`track_objects`): objects whose memories have the same number of frames and pointers share a
batch; the result for each is the one it would get alone.
"""

from __future__ import annotations

import torch

from model.network.sam2 import HeadOutput, ImageFeatures, SAM2Model
from model.video import tracking
from model.video.memory_cache import LayerKV, numeric_mode
from model.video.tracking import MemoryRead, ObjectMemory, StepOutput, encode_memory, sequence_first


def memory_keys_values(
    model: SAM2Model,
    read: MemoryRead,
    memory: ObjectMemory,
    dtype: torch.dtype,
    device: torch.device,
) -> list[LayerKV]:
    """Per memory-attention layer, the cross-attention keys and values of one object's memory read:
    1, heads, M, c each (the spatial tokens, then the object pointers' tokens).

    Without a cache that keeps keys and values, the read's memory tokens and positions are assembled and
    projected whole, as memory attention projects its ``memory`` input (the official's tensors, bit for
    bit). With one, memory frames come from the cache (projected once per stored output), each plus its
    temporal slot's key offset, and the few object-pointer tokens are projected here.
    """
    layers = model.memory_attention.layers
    memory_pos, cache = memory.memory_pos, memory.cache
    grid_tokens = memory_pos.shape[-2] * memory_pos.shape[-1]
    if cache is None or not cache.keeps_kv:
        tokens, pos, num_pointer_tokens = tracking.memory_tokens(model, read, memory_pos, dtype, device)
        tokens, pos = tokens.transpose(0, 1), pos.to(dtype).transpose(0, 1)  # 1, M, 64
        return [
            layer.cross_attn_image.project_memory(tokens + pos, tokens, grid_tokens, num_pointer_tokens)
            for layer in layers
        ]
    keys: list[list[torch.Tensor]] = [[] for _ in layers]
    values: list[list[torch.Tensor]] = [[] for _ in layers]
    for slot, _, entry in read.spatial:
        frame_kv = cache.frame_kv(model, entry, memory_pos, dtype, device)
        offsets = cache.slot_offsets(model, slot, grid_tokens, dtype, device)
        for i, ((k, v), offset) in enumerate(zip(frame_kv, offsets)):
            keys[i].append(k + offset)
            values[i].append(v)
    pointers = tracking.pointer_memory(model, read, dtype, device)
    if pointers is not None:
        tokens, pos = (x.transpose(0, 1).to(dtype) for x in pointers)  # 1, 4N, 64
        for i, layer in enumerate(layers):
            k, v = layer.cross_attn_image.project_memory(tokens + pos, tokens, grid_tokens, tokens.shape[1])
            keys[i].append(k)
            values[i].append(v)
    return [(torch.cat(k, dim=-2), torch.cat(v, dim=-2)) for k, v in zip(keys, values)]


def condition_group(
    model: SAM2Model,
    features: ImageFeatures,
    reads: list[MemoryRead],
    memories: list[ObjectMemory],
) -> torch.Tensor:
    """Memory attention of one frame for objects whose reads have the same shape (as many memory frames
    and pointers), as one batch: B, 256, h, w.

    Each object's keys and values come from `memory_keys_values`, projected on their own, so an object's
    result in a batch is computed as it would be alone.
    """
    embedding = features.embedding
    dtype, device = embedding.dtype, embedding.device
    per_object = [
        memory_keys_values(model, read, memory, dtype, device) for read, memory in zip(reads, memories)
    ]
    memory_kv = per_object[0]
    if len(per_object) > 1:
        memory_kv = [
            tuple(torch.cat(parts, dim=0) for parts in zip(*layer)) for layer in zip(*per_object)
        ]  # per layer: B, heads, M, c
    _, channels, height, width = embedding.shape
    batch = memory_kv[0][0].shape[0]  # the objects (training reads a batch of objects as one memory)
    curr = sequence_first(embedding).expand(-1, batch, -1)
    curr_pos = sequence_first(features.pos[-1]).expand(-1, batch, -1)
    fused = model.memory_attention(curr, curr_pos, None, None, memory_kv=memory_kv)
    return fused.permute(1, 2, 0).reshape(batch, channels, height, width)


def condition_objects(
    model: SAM2Model,
    features: ImageFeatures,
    frame_idx: int,
    memories: list[ObjectMemory],
    num_frames: int,
    reverse: bool = False,
) -> list[torch.Tensor]:
    """Each object's memory-conditioned features of one (non-initial) frame: ``1, 256, h, w`` each.

    Objects with a cache reuse kept results and batch the rest by memory shape (`condition_group`);
    objects without one run alone through the plain path.
    """
    embedding = features.embedding
    dtype, device = embedding.dtype, embedding.device
    results: list[torch.Tensor | None] = [None] * len(memories)
    pending: dict[tuple[int, int], list[tuple[int, MemoryRead]]] = {}
    context = (reverse, num_frames, numeric_mode(device, dtype))
    for i, memory in enumerate(memories):
        read = tracking.read_memory(model, frame_idx, memory, num_frames, reverse)
        if memory.cache is None:
            results[i] = condition_group(model, features, [read], [memory])
            continue
        kept = memory.cache.conditioned(memory.owner, frame_idx, read.spatial, read.pointers, context)
        if kept is not None:
            results[i] = kept
            continue
        pending.setdefault((len(read.spatial), len(read.pointers)), []).append((i, read))
    for group in pending.values():
        fused = condition_group(model, features, [read for _, read in group], [memories[i] for i, _ in group])
        for b, (i, read) in enumerate(group):
            result = fused[b : b + 1] if len(group) == 1 else fused[b : b + 1].clone()
            memory = memories[i]
            memory.cache.keep_conditioned(
                memory.owner, frame_idx, read.spatial, read.pointers, context, result
            )
            results[i] = result
    return results


def condition_on_memory(
    model: SAM2Model,
    features: ImageFeatures,
    frame_idx: int,
    is_init_cond_frame: bool,
    memory: ObjectMemory,
    num_frames: int,
    reverse: bool = False,
) -> torch.Tensor:
    """The frame's stride-16 features fused with the object's memory: ``1, 256, h, w``.

    An initial conditioning frame has no memory to read: the learned ``no_mem_embed`` is added instead.
    """
    if is_init_cond_frame:
        return features.embedding + model.no_mem_embed.view(1, -1, 1, 1)
    return condition_objects(model, features, frame_idx, [memory], num_frames, reverse)[0]


def track_step(
    model: SAM2Model,
    features: ImageFeatures,
    frame_idx: int,
    memory: ObjectMemory,
    num_frames: int,
    is_init_cond_frame: bool,
    point_coords: torch.Tensor | None = None,
    point_labels: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    prev_mask_logits: torch.Tensor | None = None,
    reverse: bool = False,
    run_memory_encoder: bool = True,
) -> StepOutput:
    """Segment one object on one frame.

    Arguments:
      features: the frame's image features (batch of 1).
      memory: what the object's bank holds (ignored on an initial conditioning frame and for mask prompts).
      is_init_cond_frame: the object has not been tracked on this frame: segment it like an image.
      point_coords, point_labels: 1, P, 2 points in network-input pixels and their labels.
      mask: 1, 1, S, S binary mask prompt, used directly as the output.
      prev_mask_logits: 1, 1, S/4, S/4 earlier logits of this frame, fed with the points as a mask prompt
        (correction clicks).
      reverse: tracking runs backwards in time.
      run_memory_encoder: also encode the prediction into a memory frame.
    """
    if mask is not None:
        # A mask prompt is taken as ground truth; the memory does not matter.
        heads: HeadOutput = model.mask_as_output(features.embedding, features.high_res, mask)
    else:
        conditioned = condition_on_memory(
            model, features, frame_idx, is_init_cond_frame, memory, num_frames, reverse
        )
        num_points = 0 if point_labels is None else point_labels.shape[1]
        heads = model.predict_heads(
            conditioned,
            features.high_res,
            point_coords=point_coords,
            point_labels=point_labels,
            mask_prompt=prev_mask_logits,
            multimask=model.use_multimask(is_init_cond_frame, num_points),
        )
    return _outputs(model, features, heads, run_memory_encoder)[0]


def track_objects(
    model: SAM2Model,
    features: ImageFeatures,
    frame_idx: int,
    memories: list[ObjectMemory],
    num_frames: int,
    reverse: bool = False,
) -> list[StepOutput]:
    """Track several objects on one frame from their memories alone (no prompts), memory encoded: what
    `track_step` gives each of them with ``is_init_cond_frame=False``, computed as one batch."""
    if not memories:
        return []
    conditioned = _as_batch(condition_objects(model, features, frame_idx, memories, num_frames, reverse))
    batch = conditioned.shape[0]
    heads = model.predict_heads(
        conditioned,
        [x.expand(batch, -1, -1, -1) for x in features.high_res],
        multimask=model.use_multimask(False, 0),
    )
    return _outputs(model, features, heads, run_memory_encoder=True)


def _as_batch(conditioned: list[torch.Tensor]) -> torch.Tensor:
    """Per-object ``1, C, h, w`` features as one batch, channels still the fastest axis in memory.

    Memory attention leaves its output channels-fastest, as the official hands it to the heads; a plain
    ``torch.cat`` would store it channels-slowest, and the mask decoder's bf16 products then round
    differently from the official (measured under autocast: 0.007 in the logits of a tracked frame).
    """
    if len(conditioned) == 1:
        return conditioned[0]
    return torch.cat([c.permute(0, 2, 3, 1) for c in conditioned]).permute(0, 3, 1, 2)


def _outputs(
    model: SAM2Model, features: ImageFeatures, heads: HeadOutput, run_memory_encoder: bool
) -> list[StepOutput]:
    """Split a (batched) head output into one `StepOutput` per object, memory encoded if asked."""
    batch = heads.low_res_masks.shape[0]
    maskmem = pos = None
    if run_memory_encoder:
        maskmem, pos = encode_memory(
            model,
            features.embedding.expand(batch, -1, -1, -1),
            heads.high_res_masks,
            heads.object_score_logits,
            binarize=False,  # clicked frames are binarised when filed into memory (the predictor)
        )
    outs = []
    for b in range(batch):
        part = slice(b, b + 1)
        outs.append(
            StepOutput(
                low_res_masks=heads.low_res_masks[part],
                high_res_masks=heads.high_res_masks[part],
                obj_ptr=heads.obj_ptr[part],
                object_score_logits=heads.object_score_logits[part],
                iou=heads.iou[part],
                maskmem_features=None if maskmem is None else maskmem[part],
                maskmem_pos=None if pos is None else pos[part],
            )
        )
    return outs
