"""The image features of recently read frames: cache hits equal fresh encodes, and the cache is bounded by
frame count and by bytes, least recently used out first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.network.sam2 import ImageFeatures
from model.video.frame_features import FrameFeatures
from model.video.video_frames import ArraySource
from tests.support import session_helpers

SIZE = 32
FRAME_BYTES = 3 * SIZE * SIZE * 4  # the echo "features" of one frame: 1, 3, S, S float32


class EchoEncoder:
    """Stands in for the network: a frame's "features" are a copy of its network input."""

    image_size = SIZE

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        return ImageFeatures(embedding=images.clone(), high_res=[], pos=[])


def clip(num_frames: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(num_frames, 24, 40, 3), dtype=np.uint8)


def cached_frames(features: FrameFeatures, num_frames: int) -> list[int]:
    return [t for t in range(num_frames) if t in features]


def assert_same_features(a: ImageFeatures, b: ImageFeatures) -> None:
    assert torch.equal(a.embedding, b.embedding)
    for x, y in zip(a.high_res, b.high_res, strict=True):
        assert torch.equal(x, y)
    for x, y in zip(a.pos, b.pos, strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)


def test_cache_hits_return_features_equal_to_fresh_encodes(torch_single_thread):
    model = session_helpers.predictor().model
    frames = ArraySource(session_helpers.make_frames(num_frames=4))
    features = FrameFeatures(model, frames, "cpu", capacity=3, prefetch_frames=0)
    with torch.inference_mode():
        for t in (0, 1, 2, 0):
            features[t]
        assert (features.stats.hits, features.stats.misses) == (1, 3)
        fresh = model.encode_image(frames.network_input(0, model.image_size)[None])
        assert_same_features(features[0], fresh)


@pytest.mark.slow
def test_position_encodings_are_kept_once_for_all_frames_under_autocast(torch_single_thread):
    model = session_helpers.predictor().model
    frames = ArraySource(session_helpers.make_frames(num_frames=2))
    features = FrameFeatures(model, frames, "cpu", capacity=2, prefetch_frames=0)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        first, second = features[0], features[1]
        fresh = model.encode_image(frames.network_input(1, model.image_size)[None])
    assert any(p.dtype == torch.bfloat16 for p in fresh.pos)  # a per-frame copy without sharing
    assert all(a is b for a, b in zip(first.pos, second.pos, strict=True))
    assert_same_features(second, fresh)
    one_frame = sum(t.untyped_storage().nbytes() for t in (fresh.embedding, *fresh.high_res))
    assert features.cached_bytes == 2 * one_frame


def test_cache_evicts_the_least_recently_used_frame_beyond_its_capacity():
    features = FrameFeatures(EchoEncoder(), ArraySource(clip()), "cpu", capacity=3, prefetch_frames=0)
    for t in range(5):
        features[t]
    assert cached_frames(features, 8) == [2, 3, 4]
    features[2]  # now 3 is the least recently used
    features[6]
    assert cached_frames(features, 8) == [2, 4, 6]
    assert (features.stats.hits, features.stats.misses, features.stats.evictions) == (1, 6, 3)


def test_cache_evicts_frames_beyond_its_byte_budget():
    budget = FRAME_BYTES * 5 // 2  # room for two frames and a half
    features = FrameFeatures(EchoEncoder(), ArraySource(clip()), "cpu", capacity=16, max_bytes=budget)
    for t in range(4):
        features[t]
    assert cached_frames(features, 8) == [2, 3]
    assert features.cached_bytes == 2 * FRAME_BYTES
    features.close()


def test_the_frame_just_read_stays_cached_even_over_the_byte_budget():
    features = FrameFeatures(EchoEncoder(), ArraySource(clip()), "cpu", max_bytes=1, prefetch_frames=0)
    features[3]
    features[3]
    assert cached_frames(features, 8) == [3]
    assert (features.stats.hits, features.stats.misses) == (1, 1)


def test_clear_forgets_every_frame():
    features = FrameFeatures(EchoEncoder(), ArraySource(clip()), "cpu", prefetch_frames=0)
    features[0]
    features.clear()
    assert cached_frames(features, 8) == [] and features.cached_bytes == 0
