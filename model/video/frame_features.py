"""Image features of video frames, computed on demand and kept for a few recently used frames only."""

from __future__ import annotations

from collections import OrderedDict

import torch

from model.network.sam2 import ImageFeatures, SAM2Model
from model.video.video_frames import FrameSource


class FrameFeatures:
    """Backbone features of the frames of one video, by frame index.

    A frame is decoded, resized and encoded the first time it is asked for; the features of the
    ``capacity`` most recently used frames stay cached (a click and the propagation of every object on a
    frame reuse them), older ones are dropped. Nothing here grows with the length of the video.

    Arguments:
      model: the network whose image encoder runs.
      frames: the lazily decoded video.
      device: where the network input goes (the model's device).
      capacity: how many frames' features to keep (at least 1).
    """

    def __init__(
        self, model: SAM2Model, frames: FrameSource, device: torch.device, capacity: int = 2
    ) -> None:
        self.model = model
        self.frames = frames
        self.device = torch.device(device)
        self.capacity = max(1, int(capacity))
        self._cache: OrderedDict[int, ImageFeatures] = OrderedDict()

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, frame_idx: int) -> ImageFeatures:
        features = self._cache.get(frame_idx)
        if features is not None:
            self._cache.move_to_end(frame_idx)
            return features
        image = self.frames.network_input(frame_idx, self.model.image_size)  # 3, S, S float32 on CPU
        image = image.to(self.device).float().unsqueeze(0)
        features = self.model.encode_image(image)
        self._cache[frame_idx] = features
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return features

    def clear(self) -> None:
        self._cache.clear()
