"""The inference state of one video session: frames, cached features, objects and their memory banks."""

from __future__ import annotations

from typing import Any

import torch

from model.video.frame_features import FrameFeatures
from model.video.frame_source import FrameSource
from model.video.memory_bank import ObjectTrack, TensorVault
from model.video.memory_cache import MemoryCache


class VideoState:
    """Everything ``SAM2VideoPredictor`` knows about one video, returned by ``init_state``.

    Objects are kept in the order they were first prompted; an object's index in that order is what the
    official implementation calls ``obj_idx`` and fixes the order of the masks returned for a frame.

    The official state is a dict; the common reads work here too (``state["num_frames"]``,
    ``state["obj_ids"]``, ``state["video_height"]``, ``state["video_width"]``, ``state["device"]``, ...).
    """

    _DICT_KEYS = (
        "num_frames",
        "obj_ids",
        "video_height",
        "video_width",
        "device",
        "storage_device",
        "offload_video_to_cpu",
        "offload_state_to_cpu",
        "obj_id_to_idx",
        "obj_idx_to_id",
    )

    def __init__(
        self,
        frames: FrameSource,
        features: FrameFeatures,
        device: torch.device,
        storage_device: torch.device,
        ram_budget_bytes: int | None,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        memory_cache: MemoryCache | None = None,
    ) -> None:
        self.frames = frames
        self.features = features
        self.num_frames = len(frames)
        self.video_height = frames.height
        self.video_width = frames.width
        self.device = device
        self.storage_device = storage_device
        self.offload_video_to_cpu = offload_video_to_cpu
        self.offload_state_to_cpu = offload_state_to_cpu
        self.vault = TensorVault(ram_budget_bytes)
        self.objects: list[ObjectTrack] = []
        # Position encoding of a memory frame: the same for every frame and object, so kept once.
        self.memory_pos: torch.Tensor | None = None
        # Reused memory work (projected memory frames, conditioned features); None: nothing is reused.
        self.memory_cache = memory_cache
        # This state's choice of ``add_all_frames_to_correct_as_cond`` (None: the predictor's own).
        self.corrections_as_conditioning: bool | None = None

    # ------------------------------------------------------------------ objects
    @property
    def obj_ids(self) -> list:
        return [track.obj_id for track in self.objects]

    @property
    def obj_id_to_idx(self) -> dict:
        return {track.obj_id: i for i, track in enumerate(self.objects)}

    @property
    def obj_idx_to_id(self) -> dict:
        return dict(enumerate(self.obj_ids))

    def index_of(self, obj_id: Any) -> int | None:
        for i, track in enumerate(self.objects):
            if track.obj_id == obj_id:
                return i
        return None

    def track(self, obj_id: Any) -> ObjectTrack:
        """The object's track, created (as the last object) if the id is new."""
        idx = self.index_of(obj_id)
        if idx is not None:
            return self.objects[idx]
        track = ObjectTrack(obj_id)
        self.objects.append(track)
        return track

    def remove(self, obj_id: Any) -> None:
        idx = self.index_of(obj_id)
        if idx is not None:
            self.objects.pop(idx).clear()

    def reset(self) -> None:
        """Forget every object, prompt and output (frames and cached features stay)."""
        for track in self.objects:
            track.clear()
        self.objects.clear()
        if self.memory_cache is not None:
            self.memory_cache.clear()

    def close(self) -> None:
        """Release the frames, features, and the spill folder."""
        self.reset()
        self.features.clear()
        self.vault.close()
        self.frames.close()

    # ------------------------------------------------------------------ dict-style access
    def __getitem__(self, key: str) -> Any:
        if key not in self._DICT_KEYS:
            raise KeyError(f"{key!r} is not available on this inference state; known keys: {self._DICT_KEYS}")
        return getattr(self, key)

    def __contains__(self, key: str) -> bool:
        return key in self._DICT_KEYS

    def keys(self) -> tuple[str, ...]:
        return self._DICT_KEYS

    def __repr__(self) -> str:
        return (
            f"VideoState(frames={self.num_frames}, size={self.video_height}x{self.video_width}, "
            f"objects={self.obj_ids}, stored_outputs={len(self.vault)}, spilled={self.vault.spilled})"
        )
