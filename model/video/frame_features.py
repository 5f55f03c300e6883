"""Image features of video frames: computed on demand, the recently used ones kept in a bounded cache, and
the next frames of a tracking run decoded ahead on a background thread (`model.video.prefetch`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from model.network.sam2 import ImageFeatures, SAM2Model
from model.video.frame_source import FrameSource
from model.video.prefetch import FramePrefetcher

DEFAULT_CACHE_FRAMES = 16
DEFAULT_CACHE_BYTES = 512 * 2**20
"""At 1024 px one frame's features hold 16 MiB, so 16 frames fit well inside the 512 MiB."""
DEFAULT_PREFETCH_FRAMES = 4


@dataclass
class FeatureCacheStats:
    """How the cache served reads: ``hits`` reused features, ``misses`` ran the image encoder."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0


class FrameFeatures:
    """Backbone features of the frames of one video, by frame index.

    A frame is decoded, resized and encoded the first time it is asked for. The features of recently used
    frames stay cached (a click, a scrub back and a click, and every object of a tracked frame reuse them),
    at most ``capacity`` frames and ``max_bytes`` bytes, least recently used out first; the last frame read
    is always kept. During a tracking run the next ``prefetch_frames`` frames are decoded ahead, in the
    run's direction, on a background thread. Nothing here grows with the length of the video.

    Arguments:
      model: the network whose image encoder runs.
      frames: the lazily decoded video.
      device: where the network input goes (the model's device).
      capacity: how many frames' features to keep (at least 1).
      max_bytes: how many bytes of features to keep (the position encodings, the same for every frame, are
        kept once and not counted).
      prefetch_frames: how many frames to decode ahead while tracking (0: none, frames are decoded when read).
    """

    def __init__(
        self,
        model: SAM2Model,
        frames: FrameSource,
        device: torch.device,
        capacity: int = DEFAULT_CACHE_FRAMES,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        prefetch_frames: int = DEFAULT_PREFETCH_FRAMES,
    ) -> None:
        if prefetch_frames < 0:
            raise ValueError(f"prefetch_frames must be >= 0 (0 turns prefetching off), got {prefetch_frames}")
        self.model = model
        self.frames = frames
        self.device = torch.device(device)
        self.capacity = max(1, int(capacity))
        self.max_bytes = int(max_bytes)
        self.stats = FeatureCacheStats()
        self._cache: OrderedDict[int, ImageFeatures] = OrderedDict()
        self._sizes: dict[int, int] = {}  # frame -> bytes its features hold
        self._shared_pos: dict[tuple, torch.Tensor] = {}
        self.prefetcher: FramePrefetcher | None = None
        if prefetch_frames:
            self.prefetcher = FramePrefetcher(
                frames,
                model.image_size,
                depth=prefetch_frames,
                pin_memory=self.device.type == "cuda",
                is_cached=self._cache.__contains__,
            )

    def __len__(self) -> int:
        return len(self.frames)

    def __contains__(self, frame_idx: int) -> bool:
        return frame_idx in self._cache

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the cached features (the shared position encodings not counted)."""
        return sum(self._sizes.values())

    def __getitem__(self, frame_idx: int) -> ImageFeatures:
        features = self._cache.get(frame_idx)
        if features is not None:
            self.stats.hits += 1
            self._cache.move_to_end(frame_idx)
            if self.prefetcher is not None:
                self.prefetcher.note_read(frame_idx)
            return features
        self.stats.misses += 1
        image = None
        if self.prefetcher is not None:
            image = self.prefetcher.take(frame_idx)
            self.prefetcher.note_read(frame_idx)  # the worker decodes the next frames while this one encodes
        # Prefetched inputs are pinned on CUDA, so their copy does not wait for the device.
        pinned = image is not None and self.prefetcher.pin_memory
        if image is None:
            image = self.frames.network_input(frame_idx, self.model.image_size)  # 3, S, S float32 on CPU
        image = image.to(self.device, non_blocking=pinned).float().unsqueeze(0)  # 1, 3, S, S
        features = self._share_position_encodings(self.model.encode_image(image))
        self._cache[frame_idx] = features
        self._sizes[frame_idx] = _bytes_held(features.embedding, *features.high_res)
        self._evict()
        return features

    def prefetch(self, frames: Iterable[int]) -> None:
        """Announce the frames about to be read, in order (a tracking run's frames), to decode them ahead.

        Without an announcement the direction is taken from the reads themselves (t, then t + 1 or t - 1).
        Does nothing when prefetching is off.
        """
        if self.prefetcher is not None:
            self.prefetcher.announce(frames)

    def clear(self) -> None:
        """Drop the cached features and anything decoded ahead, and end the background thread."""
        self._cache.clear()
        self._sizes.clear()
        self._shared_pos.clear()
        if self.prefetcher is not None:
            self.prefetcher.stop()

    def close(self) -> None:
        """Clear, and decode nothing ahead any more."""
        self.clear()
        if self.prefetcher is not None:
            self.prefetcher.close()

    def _evict(self) -> None:
        while len(self._cache) > 1 and (
            len(self._cache) > self.capacity or self.cached_bytes > self.max_bytes
        ):
            frame_idx, _ = self._cache.popitem(last=False)
            del self._sizes[frame_idx]
            self.stats.evictions += 1

    def _share_position_encodings(self, features: ImageFeatures) -> ImageFeatures:
        """The same features with position encodings shared across frames.

        They depend only on the grid's shape, dtype and device, never on the pixels (sine encodings of the
        grid); under autocast each frame would otherwise hold its own lower-precision copy.
        """
        pos = []
        for encoding in features.pos:
            key = (tuple(encoding.shape), encoding.dtype, encoding.device)
            pos.append(self._shared_pos.setdefault(key, encoding))
        return ImageFeatures(embedding=features.embedding, high_res=features.high_res, pos=pos)


def _bytes_held(*tensors: torch.Tensor) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a view holds its whole storage)."""
    storages = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[(storage.device, storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())
