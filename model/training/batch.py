"""What the data readers hand the training forward: clips of frames and per-object masks.

A reader yields `Clip`s (uint8 frames and boolean masks at the network input size, after the clip's
transforms); `collate` stacks several clips into one `TrainBatch`, the tensors the training forward takes.
Objects of all clips of a batch are flattened into one object axis ``N``; ``object_clip`` says which clip
(and so which frames) each object belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from model.images.transforms import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class Clip:
    """One training sample: ``T`` frames of a video (an image is a 1-frame clip) and ``K`` objects.

    ``frames``: T, S, S, 3 uint8 (already transformed and resized to the square network input);
    ``masks``: T, K, S, S bool (an object absent on a frame has an empty mask there);
    ``object_ids``: the K objects' ids in their source; ``source``: where the clip came from (for messages).
    """

    frames: np.ndarray
    masks: np.ndarray
    object_ids: tuple[int, ...]
    source: str = ""
    frame_indices: tuple[int, ...] = field(default_factory=tuple)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.masks.shape[1])


@dataclass
class TrainBatch:
    """Clips of the same length, as tensors.

    ``images``: T, V, 3, S, S float, normalised with ImageNet's mean and std (V clips);
    ``masks``: T, N, S, S bool ground truth of the N objects of all clips;
    ``object_clip``: N long, the clip of each object.
    """

    images: torch.Tensor
    masks: torch.Tensor
    object_clip: torch.Tensor
    sources: tuple[str, ...] = ()

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_clips(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_objects(self) -> int:
        return int(self.masks.shape[1])

    def image_rows(self, frame: int) -> torch.Tensor:
        """N long: for each object, its image's row in ``images.transpose(0, 1).flatten(0, 1)``
        (clip-major, as the image encoder sees the batch)."""
        return self.object_clip * self.num_frames + frame

    def to(self, device: torch.device | str) -> TrainBatch:
        return TrainBatch(
            self.images.to(device), self.masks.to(device), self.object_clip.to(device), self.sources
        )


def normalise(frames: np.ndarray) -> torch.Tensor:
    """T, S, S, 3 uint8  ->  T, 3, S, S float normalised as the network expects."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def collate(clips: list[Clip]) -> TrainBatch:
    """Stack clips of the same number of frames into one batch (objects flattened clip by clip)."""
    if not clips:
        raise ValueError("cannot make a batch of no clips")
    lengths = {clip.num_frames for clip in clips}
    if len(lengths) != 1:
        raise ValueError(f"clips of one batch must have the same number of frames, got {sorted(lengths)}")
    images = torch.stack([normalise(clip.frames) for clip in clips], dim=1)  # T, V, 3, S, S
    masks = torch.cat([torch.from_numpy(np.ascontiguousarray(clip.masks)).bool() for clip in clips], dim=1)
    object_clip = torch.cat(
        [torch.full((clip.num_objects,), v, dtype=torch.long) for v, clip in enumerate(clips)]
    )
    return TrainBatch(images, masks, object_clip, tuple(clip.source for clip in clips))
