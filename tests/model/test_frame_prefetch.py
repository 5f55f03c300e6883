"""Frames decoded ahead of a tracking run: same inputs and masks as decoding on demand, a bounded buffer, the
direction taken from the reads, errors raised only for the frame that is read, and a clean close."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.errors import VideoSourceError
from model.network.sam2 import ImageFeatures
from model.video.frame_features import FrameFeatures
from model.video.video_frames import ArraySource, open_frames
from tests.support import session_helpers

SIZE = 32


class EchoEncoder:
    """Stands in for the network: a frame's "features" are its network input, so tests see what was read."""

    image_size = SIZE

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        return ImageFeatures(embedding=images.clone(), high_res=[], pos=[])


class SlowFrames(ArraySource):
    """An in-memory clip that takes ``delay`` seconds per decode and records which frames it decoded."""

    def __init__(self, frames: np.ndarray, delay: float = 0.0) -> None:
        super().__init__(frames, cache_size=0)
        self.delay = delay
        self.decoded: list[int] = []

    def _read(self, index: int) -> np.ndarray:
        time.sleep(self.delay)
        self.decoded.append(index)
        return super()._read(index)


def clip(num_frames: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(num_frames, 24, 40, 3), dtype=np.uint8)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the prefetch worker did not get there in time")
        time.sleep(0.005)


def test_prefetched_video_file_frames_equal_frames_decoded_on_read_while_another_thread_reads(tmp_path):
    frames = session_helpers.make_frames(num_frames=16)
    path = session_helpers.write_mp4(frames, tmp_path / "clip.mp4", fps=10)
    order = list(range(16)) + list(range(15, -1, -1))
    expected = [open_frames(path).network_input(t, SIZE) for t in range(16)]

    source = open_frames(path, cache_size=2)
    features = FrameFeatures(EchoEncoder(), source, "cpu", capacity=1, prefetch_frames=3)
    stop = threading.Event()

    def display() -> None:  # a viewer scrubbing through the same file meanwhile
        rng = np.random.default_rng(1)
        while not stop.is_set():
            source.rgb(int(rng.integers(0, 16)))

    viewer = threading.Thread(target=display)
    viewer.start()
    try:
        for t in order:
            assert torch.equal(features[t].embedding[0], expected[t]), f"frame {t} differs"
    finally:
        stop.set()
        viewer.join()
        features.close()
    assert features.prefetcher.stats.served > 0


@pytest.mark.slow
def test_tracked_masks_are_equal_with_and_without_prefetch(torch_single_thread):
    predictor = session_helpers.predictor()
    frames = session_helpers.make_frames(num_frames=8)
    runs = {}
    for prefetch_frames in (0, 4):
        state = predictor.init_state(frames)
        state.features.close()
        state.features = FrameFeatures(
            predictor.model, state.frames, state.device, capacity=2, prefetch_frames=prefetch_frames
        )
        masks = []
        predictor.add_new_points_or_box(state, 0, 1, points=[session_helpers.disc_centre(0)], labels=[1])
        masks += [m for _, _, m in predictor.propagate_in_video(state)]
        x0, y0, x1, y1 = session_helpers.block_box(7)
        predictor.add_new_points_or_box(state, 7, 2, box=[x0, y0, x1, y1])
        masks += [m for _, _, m in predictor.propagate_in_video(state, start_frame_idx=7, reverse=True)]
        runs[prefetch_frames] = masks, state.features.prefetcher
        state.close()
    (plain, _), (prefetched, prefetcher) = runs[0], runs[4]
    assert len(plain) == len(prefetched) == 16
    for i, (a, b) in enumerate(zip(plain, prefetched)):
        assert torch.equal(a, b), f"masks of step {i} differ"
    assert prefetcher.stats.served >= 8  # both runs were mostly served from the buffer
    assert not prefetcher.worker_alive


def test_prefetch_stays_within_its_depth():
    source = SlowFrames(clip(), delay=0.002)
    features = FrameFeatures(EchoEncoder(), source, "cpu", capacity=2, prefetch_frames=3)
    prefetcher = features.prefetcher
    for t in range(30):
        features[t]
        ahead = 0 if t == 0 else min(3, 29 - t)  # one read gives no direction yet
        wait_until(lambda ahead=ahead: prefetcher.held == ahead)
        worker_decoded = [i for i in source.decoded if i > t]
        assert max(worker_decoded, default=t) <= t + 3, f"decoded {worker_decoded} ahead of frame {t}"
        assert prefetcher.held <= 3
    assert prefetcher.stats.peak_held == 3
    assert sorted(source.decoded) == list(range(30))  # every frame decoded once
    features.close()


def test_direction_comes_from_the_reads_and_a_jump_cancels_what_was_prepared():
    source = SlowFrames(clip())
    features = FrameFeatures(EchoEncoder(), source, "cpu", capacity=1, prefetch_frames=3)
    prefetcher = features.prefetcher
    features[20]
    assert prefetcher.held == 0 and source.decoded == [20]  # one read gives no direction
    features[19]
    wait_until(lambda: prefetcher.held == 3)
    assert [t for t in source.decoded if t < 19] == [18, 17, 16]
    features[5]  # elsewhere: nothing prepared is useful any more
    assert prefetcher.held == 0
    assert prefetcher.stats.dropped == 3
    time.sleep(0.05)
    assert source.decoded[-1] == 5  # and nothing new is prepared without a direction
    features.close()


def test_announced_frames_are_prepared_in_their_order():
    source = SlowFrames(clip())
    features = FrameFeatures(EchoEncoder(), source, "cpu", capacity=1, prefetch_frames=2)
    prefetcher = features.prefetcher
    features.prefetch([9, 3, 12, 1])
    wait_until(lambda: prefetcher.held == 2)
    assert source.decoded == [9, 3]
    features[9]
    wait_until(lambda: prefetcher.held == 2)
    assert source.decoded == [9, 3, 12]
    features[3]
    features[12]
    wait_until(lambda: prefetcher.held == 1)
    features[1]
    assert prefetcher.stats.served == 4
    assert sorted(source.decoded) == [1, 3, 9, 12]
    features.close()


def test_frames_with_cached_features_are_not_decoded_ahead():
    source = SlowFrames(clip())
    features = FrameFeatures(EchoEncoder(), source, "cpu", capacity=16, prefetch_frames=3)
    for t in range(10):
        features[t]
    for t in range(9, -1, -1):  # scrubbing back over frames still cached
        features[t]
    time.sleep(0.05)
    assert sorted(t for t in source.decoded if t < 10) == list(range(10))  # each once, going forward
    assert features.stats.hits == 10
    features.close()


def corrupt_jpeg_folder(folder: Path, bad: int) -> Path:
    folder.mkdir()
    for t, frame in enumerate(clip(10)):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=90)
    path = folder / f"{bad:05d}.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # the header still reads, the pixels do not
    return folder


@pytest.mark.parametrize("prefetch_frames", [0, 3])
def test_unreadable_frame_raises_only_when_read_and_as_without_prefetch(tmp_path, prefetch_frames):
    folder = corrupt_jpeg_folder(tmp_path / "frames", bad=5)
    features = FrameFeatures(EchoEncoder(), open_frames(folder), "cpu", prefetch_frames=prefetch_frames)
    for t in range(5):
        features[t]
    if prefetch_frames:
        wait_until(lambda: features.prefetcher.stats.failed == 1)  # the worker met the bad frame already
    with pytest.raises(VideoSourceError) as raised:
        features[5]
    features[6]  # the frames after it still read
    features.close()

    reference = FrameFeatures(EchoEncoder(), open_frames(folder), "cpu", prefetch_frames=0)
    with pytest.raises(VideoSourceError) as expected:
        reference[5]
    assert str(raised.value) == str(expected.value)
    assert "cannot decode frame 5" in str(raised.value)


def test_close_while_the_worker_decodes_ends_it_cleanly(monkeypatch):
    errors = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    source = SlowFrames(clip(), delay=0.2)
    features = FrameFeatures(EchoEncoder(), source, "cpu", prefetch_frames=4)
    features[0]
    features[1]
    wait_until(lambda: len(source.decoded) == 2 and features.prefetcher.worker_alive)
    time.sleep(0.05)  # the worker is inside the decode of frame 2
    features.close()
    assert not features.prefetcher.worker_alive
    assert features.prefetcher.held == 0
    features[2]  # reads still work, without prefetching
    assert not features.prefetcher.worker_alive
    source.close()
    assert errors == []


def test_closing_the_state_stops_the_worker_before_the_frames_close(torch_single_thread):
    predictor = session_helpers.predictor()
    state = predictor.init_state(SlowFrames(clip(), delay=0.1))
    state.features.close()
    state.features = FrameFeatures(EchoEncoder(), state.frames, state.device, prefetch_frames=4)
    state.features[0]
    state.features[1]
    wait_until(lambda: state.features.prefetcher.worker_alive)
    state.close()
    assert not state.features.prefetcher.worker_alive
    assert state.features.prefetcher.stats.failed == 0  # it never read from the closed source


def test_prefetch_frames_must_not_be_negative():
    with pytest.raises(ValueError, match="prefetch_frames must be >= 0"):
        FrameFeatures(EchoEncoder(), ArraySource(clip(2)), "cpu", prefetch_frames=-1)
