"""What video tracking keeps per object and frame, within a RAM budget.

``TensorVault`` holds immutable bundles of tensors. It keeps the most recently used ones in memory up to a
byte budget and writes the others to files in a temporary folder it owns; reading a spilled bundle loads it
back bit for bit, so spilling never changes a result. Tracking reads only a sliding window of recent frames
plus the conditioning frames, so in practice the frames far behind the current one are the ones on disk.

``FrameOutput`` is one object's output on one frame: the heavy tensors (low-resolution mask logits and the
bf16 memory features) live in the vault; the object pointer, score and predicted IoU (about 1 KiB) stay in
memory, since every step reads up to 16 pointers. ``ObjectTrack`` gathers one object's prompts and outputs.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

DEFAULT_RAM_BUDGET_MB = 512.0


class TensorVault:
    """Immutable named-tensor bundles: in memory up to ``ram_budget_bytes``, least recently used ones on disk.

    Arguments:
      ram_budget_bytes: bytes of bundle tensors kept in memory (on whatever device they live); ``None`` keeps
        everything in memory.
      spill_dir: parent folder of the temporary spill folder (default: the system temp dir).
    """

    def __init__(self, ram_budget_bytes: int | None = None, spill_dir: str | os.PathLike | None = None):
        self.ram_budget_bytes = ram_budget_bytes
        self._spill_parent = spill_dir
        self._in_ram: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()  # least recent first
        self._sizes: dict[int, int] = {}
        self._on_disk: dict[int, tuple[Path, torch.device]] = {}
        self._keys = itertools.count()
        self._folder: Path | None = None
        self._cleanup: weakref.finalize | None = None
        self.ram_bytes = 0

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def spilled(self) -> int:
        """How many bundles are currently on disk only."""
        return sum(1 for k in self._on_disk if k not in self._in_ram)

    def put(self, tensors: dict[str, torch.Tensor]) -> int:
        """Store a bundle; returns its key. The tensors must not be modified afterwards."""
        key = next(self._keys)
        self._in_ram[key] = tensors
        self._sizes[key] = sum(t.numel() * t.element_size() for t in tensors.values())
        self.ram_bytes += self._sizes[key]
        self._enforce_budget(keep=key)
        return key

    def get(self, key: int) -> dict[str, torch.Tensor]:
        """The bundle stored under ``key`` (loaded back from disk if it was spilled)."""
        bundle = self._in_ram.get(key)
        if bundle is not None:
            self._in_ram.move_to_end(key)
            return bundle
        path, device = self._on_disk[key]
        bundle = torch.load(path, map_location=device, weights_only=True)
        self._in_ram[key] = bundle
        self.ram_bytes += self._sizes[key]
        self._enforce_budget(keep=key)
        return bundle

    def discard(self, key: int) -> None:
        """Forget a bundle (no-op if unknown)."""
        if key in self._in_ram:
            del self._in_ram[key]
            self.ram_bytes -= self._sizes[key]
        self._sizes.pop(key, None)
        spilled = self._on_disk.pop(key, None)
        if spilled is not None:
            spilled[0].unlink(missing_ok=True)

    def clear(self) -> None:
        for key in list(self._sizes):
            self.discard(key)

    def close(self) -> None:
        """Forget everything and delete the spill folder."""
        self.clear()
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup, self._folder = None, None

    def _enforce_budget(self, keep: int) -> None:
        if self.ram_budget_bytes is None:
            return
        while self.ram_bytes > self.ram_budget_bytes and len(self._in_ram) > 1:
            key = next(iter(self._in_ram))
            if key == keep:
                break
            self._spill(key)

    def _spill(self, key: int) -> None:
        bundle = self._in_ram.pop(key)
        self.ram_bytes -= self._sizes[key]
        if key in self._on_disk:  # bundles are immutable: the file written earlier is still valid
            return
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="sam2_video_state_", dir=self._spill_parent))
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._folder, True)
        path = self._folder / f"{key}.pt"
        device = next(iter(bundle.values())).device if bundle else torch.device("cpu")
        torch.save(bundle, path)
        self._on_disk[key] = (path, device)


class FrameOutput:
    """One object's stored output on one frame.

    ``pred_masks`` 1, 1, S/4, S/4 fp32 logits (after hole filling); ``maskmem_features`` 1, 64, h, w bf16, or
    None until the memory encoder has run on it; ``obj_ptr`` 1, 256; ``object_score_logits`` 1, 1;
    ``iou`` 1, 1 the decoder's predicted IoU of the mask (1 for a mask prompt). Heavy tensors live in the
    vault and are released when the output is garbage collected.
    """

    def __init__(
        self,
        vault: TensorVault,
        pred_masks: torch.Tensor,
        maskmem_features: torch.Tensor | None,
        obj_ptr: torch.Tensor,
        object_score_logits: torch.Tensor,
        iou: torch.Tensor,
    ) -> None:
        bundle = {"pred_masks": pred_masks}
        if maskmem_features is not None:
            bundle["maskmem_features"] = maskmem_features
        self._vault = vault
        self._key = vault.put(bundle)
        weakref.finalize(self, vault.discard, self._key)
        self.has_memory = maskmem_features is not None
        self.obj_ptr = obj_ptr
        self.object_score_logits = object_score_logits
        self.iou = iou

    @property
    def pred_masks(self) -> torch.Tensor:
        return self._vault.get(self._key)["pred_masks"]

    @property
    def maskmem_features(self) -> torch.Tensor | None:
        return self._vault.get(self._key).get("maskmem_features")

    def with_memory(self, maskmem_features: torch.Tensor) -> FrameOutput:
        """The same output with its memory features filled in."""
        return FrameOutput(
            self._vault, self.pred_masks, maskmem_features, self.obj_ptr, self.object_score_logits, self.iou
        )


@dataclass
class ObjectTrack:
    """One object's prompts and outputs, by frame index.

    ``cond`` / ``non_cond``: outputs that tracking reads as memory (conditioning frames: the prompted ones).
    ``temp_cond`` / ``temp_non_cond``: outputs of prompts given since the last propagation, not yet encoded
    into memory. ``tracked``: frames with an output, and whether tracking reached them in reverse.
    Dicts keep insertion order, which fixes the memory token order.
    """

    obj_id: object
    points: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # (1,P,2), (1,P)
    masks: dict[int, torch.Tensor] = field(default_factory=dict)  # 1, 1, S, S
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)

    def outputs(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.cond if is_cond else self.non_cond

    def temp_outputs(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.temp_cond if is_cond else self.temp_non_cond

    def latest_output(self, frame_idx: int, is_cond: bool) -> FrameOutput | None:
        """The newest output on a frame: a pending prompt of that kind, else the stored one."""
        for outputs in (self.temp_outputs(is_cond), self.cond, self.non_cond):
            out = outputs.get(frame_idx)
            if out is not None:
                return out
        return None

    def newest_output(self, frame_idx: int) -> FrameOutput | None:
        """The newest output on a frame whatever its kind: a pending prompt, else the stored one."""
        for outputs in (self.temp_cond, self.temp_non_cond, self.cond, self.non_cond):
            out = outputs.get(frame_idx)
            if out is not None:
                return out
        return None

    def clear(self) -> None:
        for d in (
            self.points,
            self.masks,
            self.cond,
            self.non_cond,
            self.temp_cond,
            self.temp_non_cond,
            self.tracked,
        ):
            d.clear()
