"""Exact reuse of memory work within one video: keys and values per memory frame, and conditioned features.

Two things repeat while tracking and clicking, and both are kept here, per inference state:

* **Keys and values of a memory frame.** A stored memory frame is read by the next ``num_maskmem - 1`` tracked
  frames (a conditioning frame by every one), each time at some temporal slot. Its cross-attention keys and
  values are projected (and the keys rotated by RoPE) once per layer; a slot's temporal encoding enters the
  keys linearly, so it is added afterwards as a precomputed per-slot offset (`slot_offsets`). The values do
  not depend on the slot at all.
* **Memory-conditioned features of a frame.** A correction click on a tracked frame conditions that frame on
  the object's memory exactly as tracking did. While the memory the frame reads is the same (the same stored
  outputs, identified by identity: stored outputs are immutable and replaced, never edited), the result of
  memory attention is the same, so it is kept for the most recently conditioned frames and reused.

Both caches are bounded (bytes for keys/values, a count for conditioned features) and evict the least
recently used entries; a miss recomputes, so results never depend on the bounds. They hold the stored
outputs they were computed from only weakly: a replaced output is released as before, and its kept results
can no longer match anything.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from model.network.sam2 import SAM2Model

DEFAULT_KV_BUDGET_MB = 768.0
DEFAULT_KV_FRAMES = 32  # a tracked frame reads 7 memory frames per object: room for 4 objects
DEFAULT_CONDITIONED_FRAMES = 8

LayerKV = tuple[torch.Tensor, torch.Tensor]  # keys, values: B, heads, N, c


def numeric_mode(device: torch.device, dtype: torch.dtype) -> tuple:
    """What besides the inputs decides a result's bits here: the dtype and the autocast state."""
    kind = device.type
    if torch.is_autocast_enabled(kind):
        return (dtype, kind, torch.get_autocast_dtype(kind))
    return (dtype, kind, None)


def _nbytes(kv: list[LayerKV]) -> int:
    return sum(t.numel() * t.element_size() for pair in kv for t in pair)


@dataclass
class _Conditioned:
    spatial: tuple  # (slot, frame, weak reference to the entry) as read
    pointers: tuple  # (offset, frame, weak reference to the entry) as read
    context: tuple  # reverse, number of frames, numeric mode
    features: torch.Tensor  # 1, 256, h, w


class MemoryCache:
    """Per-state cache of memory keys/values (by byte budget) and of conditioned features (by count).

    Arguments:
      kv_budget_bytes: bytes of projected keys and values kept (0 disables that cache).
      conditioned_frames: how many (object, frame) conditioned features are kept (0 disables).
      kv_frames: how many memory frames' keys and values are kept at most, whatever their size (the
        bound that keeps memory flat in video length at small input sizes).
    """

    def __init__(
        self,
        kv_budget_bytes: int = int(DEFAULT_KV_BUDGET_MB * 2**20),
        conditioned_frames: int = DEFAULT_CONDITIONED_FRAMES,
        kv_frames: int = DEFAULT_KV_FRAMES,
    ) -> None:
        self.kv_budget_bytes = max(0, int(kv_budget_bytes))
        self.kv_frames = max(0, int(kv_frames))
        self.conditioned_frames = max(0, int(conditioned_frames))
        self._frames: OrderedDict[tuple, tuple[weakref.ref, list[LayerKV], int]] = OrderedDict()
        self._offsets: dict[tuple, list[torch.Tensor]] = {}
        self._conditioned: OrderedDict[tuple[int, int], tuple[weakref.ref, _Conditioned]] = OrderedDict()
        self.kv_bytes = 0
        self.stats = {"kv_hits": 0, "kv_misses": 0, "conditioned_hits": 0, "conditioned_misses": 0}

    # ------------------------------------------------------------------ keys and values of memory frames
    @property
    def keeps_kv(self) -> bool:
        """Whether memory frames' keys and values are kept at all (else each read projects its memory
        whole, in one product per layer, which is faster when nothing would be reused)."""
        return self.kv_budget_bytes > 0 and self.kv_frames > 0

    def frame_kv(
        self,
        model: SAM2Model,
        entry: Any,
        memory_pos: torch.Tensor,
        dtype: torch.dtype,
        device: torch.device,
    ) -> list[LayerKV]:
        """Per layer, the keys (rotated, without the slot's temporal encoding) and values of one stored
        memory frame: 1, heads, h*w, c each.

        ``entry``: a stored output with ``maskmem_features`` 1, 64, h, w; ``memory_pos`` its 1, 64, h, w
        sine position encoding.
        """
        key = (id(entry), id(memory_pos), numeric_mode(device, dtype), str(device))
        hit = self._frames.get(key)
        if hit is not None and hit[0]() is entry:
            self._frames.move_to_end(key)
            self.stats["kv_hits"] += 1
            return hit[1]
        self.stats["kv_misses"] += 1
        tokens = entry.maskmem_features.to(device=device, dtype=dtype).flatten(2).transpose(1, 2)  # 1, hw, 64
        pos = memory_pos.to(device=device, dtype=dtype).flatten(2).transpose(1, 2)
        keys_in = tokens + pos
        kv = [
            layer.cross_attn_image.project_memory(keys_in, tokens, tokens.shape[1])
            for layer in model.memory_attention.layers
        ]
        self._keep_frame(key, entry, kv)
        return kv

    def slot_offsets(
        self, model: SAM2Model, slot: int, num_tokens: int, dtype: torch.dtype, device: torch.device
    ) -> list[torch.Tensor]:
        """Per layer, what temporal slot ``slot`` adds to a memory frame's rotated keys: 1, heads, N, c."""
        key = (slot, num_tokens, numeric_mode(device, dtype), str(device))
        offsets = self._offsets.get(key)
        if offsets is None:
            tpos = model.maskmem_tpos_enc[model.num_maskmem - 1 - slot].reshape(-1).to(device, dtype)  # 64
            offsets = [
                layer.cross_attn_image.rotated_key_offset(tpos, num_tokens)
                for layer in model.memory_attention.layers
            ]
            self._offsets[key] = offsets
        return offsets

    def _keep_frame(self, key: tuple, entry: Any, kv: list[LayerKV]) -> None:
        size = _nbytes(kv)
        if size > self.kv_budget_bytes or self.kv_frames == 0:
            return
        self._drop_frame(key)
        # The output is held weakly: once it is replaced (and released), its keys and values go too.
        ref = weakref.ref(entry, lambda dead, key=key: self._drop_frame(key, dead))
        self._frames[key] = (ref, kv, size)
        self.kv_bytes += size
        while self.kv_bytes > self.kv_budget_bytes or len(self._frames) > self.kv_frames:
            _, (_, _, evicted) = self._frames.popitem(last=False)
            self.kv_bytes -= evicted

    def _drop_frame(self, key: tuple, ref: weakref.ref | None = None) -> None:
        """Forget a memory frame's keys and values (only if still held through ``ref``, when given)."""
        kept = self._frames.get(key)
        if kept is not None and (ref is None or kept[0] is ref):
            del self._frames[key]
            self.kv_bytes -= kept[2]

    # ------------------------------------------------------------------ conditioned features
    def conditioned(self, owner: Any, frame_idx: int, spatial: tuple, pointers: tuple, context: tuple):
        """The conditioned features kept for ``owner`` (an object's track) on a frame if they were computed
        from the same memory read (same slots, frames and stored outputs) in the same context; else None."""
        hit = self._conditioned.get((id(owner), frame_idx))
        if hit is None or hit[0]() is not owner:
            self.stats["conditioned_misses"] += 1
            return None
        kept = hit[1]
        same = (
            kept.context == context
            and _same_read(kept.spatial, spatial)
            and _same_read(kept.pointers, pointers)
        )
        if not same:
            self.stats["conditioned_misses"] += 1
            return None
        self._conditioned.move_to_end((id(owner), frame_idx))
        self.stats["conditioned_hits"] += 1
        return kept.features

    def keep_conditioned(
        self,
        owner: Any,
        frame_idx: int,
        spatial: tuple,
        pointers: tuple,
        context: tuple,
        features: torch.Tensor,
    ) -> None:
        if self.conditioned_frames == 0:
            return
        key = (id(owner), frame_idx)
        self._conditioned.pop(key, None)
        weak = _Conditioned(_weak(spatial), _weak(pointers), context, features)
        self._conditioned[key] = (weakref.ref(owner), weak)
        while len(self._conditioned) > self.conditioned_frames:
            self._conditioned.popitem(last=False)

    def clear(self) -> None:
        self._frames.clear()
        self._offsets.clear()
        self._conditioned.clear()
        self.kv_bytes = 0


def _weak(read: tuple) -> tuple:
    """(position, frame, entry) triples with the entries held weakly."""
    return tuple((position, frame, weakref.ref(entry)) for position, frame, entry in read)


def _same_read(kept: tuple, read: tuple) -> bool:
    """A kept read (weak entries) names the same (position, frame) pairs and the very same stored outputs."""
    return len(kept) == len(read) and all(
        x[0] == y[0] and x[1] == y[1] and x[2]() is y[2] for x, y in zip(kept, read)
    )
