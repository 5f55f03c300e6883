"""The exact speed-ups of video tracking change nothing: memory keys/values projected once per memory frame,
conditioned features reused by correction clicks while the memory is unchanged, and the objects of a frame
tracked as one batch, each against the same predictor with the speed-up switched off.

Reused and recomputed results are the same computation; the keys of a memory frame are formed as
``keys(x) + keys_offset(slot)`` instead of ``keys(x + slot)`` (linear), so they may differ in the last bits:
logits are compared within 1e-4 (the parity tests against the official allow 1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.video.video_predictor import SAM2VideoPredictor
from tests.support.session_helpers import block_box, disc_centre, make_frames, predictor

ATOL = 1e-4
NUM_FRAMES = 12


def _variant(**options) -> SAM2VideoPredictor:
    """The shared random-weight predictor's network with other speed-up options."""
    base = predictor()
    return SAM2VideoPredictor(base.model, feature_cache_size=NUM_FRAMES + 2, **options)


def _plain() -> SAM2VideoPredictor:
    return _variant(memory_kv_budget_mb=0, conditioned_cache_size=0, batch_objects=False)


class _CountCalls:
    """Counts memory-attention calls and the batch each one had."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.batches: list[int] = []
        self._handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self.batches.append(args[0].shape[1])  # curr: HW, B, C

    def close(self) -> None:
        self._handle.remove()


def _point(t: int, dx: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    x, y = disc_centre(t)
    return np.array([[x + dx, y]], np.float32), np.array([1], np.int32)


def _correction_session(p: SAM2VideoPredictor, frames: np.ndarray) -> list[torch.Tensor]:
    """Prompt frame 0, track 10 frames, then three correction clicks on tracked frame 6."""
    outputs = []
    with torch.inference_mode():
        state = p.init_state(frames)
        points, labels = _point(0)
        p.add_new_points_or_box(state, 0, 1, points=points, labels=labels)
        for _, _, masks in p.propagate_in_video(state, max_frame_num_to_track=10):
            outputs.append(masks.clone())
        for dx in (0.0, 3.0, -3.0):
            points, labels = _point(6, dx)
            _, _, masks = p.add_new_points_or_box(
                state, 6, 1, points=points, labels=labels, clear_old_points=False
            )
            outputs.append(masks.clone())
        state.close()
    return outputs


def _assert_all_close(got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape, i
        assert torch.allclose(a, b, atol=ATOL), (i, (a - b).abs().max().item())
        assert torch.equal(a > 0, b > 0), i


@pytest.mark.slow
def test_correction_clicks_on_a_tracked_frame_reuse_its_conditioned_features_and_match_recomputing():
    frames = make_frames(NUM_FRAMES)
    expected = _correction_session(_plain(), frames)
    cached = _variant(memory_kv_budget_mb=256)
    calls = _CountCalls(cached.model.memory_attention)
    try:
        with torch.inference_mode():
            state = cached.init_state(frames)
            points, labels = _point(0)
            cached.add_new_points_or_box(state, 0, 1, points=points, labels=labels)
            run = cached.propagate_in_video(state, max_frame_num_to_track=10)
            got = [masks.clone() for _, _, masks in run]
            tracked_calls = len(calls.batches)
            for dx in (0.0, 3.0, -3.0):
                points, labels = _point(6, dx)
                _, _, masks = cached.add_new_points_or_box(
                    state, 6, 1, points=points, labels=labels, clear_old_points=False
                )
                got.append(masks.clone())
            stats = dict(state.memory_cache.stats)
            state.close()
    finally:
        calls.close()
    _assert_all_close(got, expected)
    assert tracked_calls == 10  # frames 1..10 were tracked through memory attention
    assert len(calls.batches) == tracked_calls  # the three clicks ran none
    assert stats["conditioned_hits"] == 3


@pytest.mark.slow
def test_a_changed_memory_bank_is_not_served_from_the_conditioned_cache():
    """After a new conditioning frame (a mask on untracked frame 10) is filed into memory, frame 6 reads more
    memory: its kept features must not be reused, and the click equals the uncached predictor's."""
    frames = make_frames(NUM_FRAMES)
    results = []
    for p in (_plain(), _variant(memory_kv_budget_mb=256)):
        with torch.inference_mode():
            state = p.init_state(frames)
            points, labels = _point(0)
            p.add_new_points_or_box(state, 0, 1, points=points, labels=labels)
            for _ in p.propagate_in_video(state, max_frame_num_to_track=7):
                pass
            mask = np.zeros(frames.shape[1:3], bool)
            x0, y0, x1, y1 = (int(v) for v in block_box(10))
            mask[y0 : y1 + 1, x0 : x1 + 1] = True
            p.add_new_mask(state, 10, 1, mask)
            for _ in p.propagate_in_video(state, start_frame_idx=10, max_frame_num_to_track=1):
                pass
            points, labels = _point(6)
            _, _, masks = p.add_new_points_or_box(state, 6, 1, points=points, labels=labels)
            results.append(masks.clone())
            if state.memory_cache is not None and p.conditioned_cache_size:
                assert state.memory_cache.stats["conditioned_hits"] == 0
            state.close()
    _assert_all_close(results[1:], results[:1])


@pytest.mark.slow
def test_memory_frames_are_projected_once_and_reused_by_the_frames_that_read_them():
    frames = make_frames(NUM_FRAMES)
    p = _variant(conditioned_cache_size=0, memory_kv_budget_mb=256)
    with torch.inference_mode():
        state = p.init_state(frames)
        points, labels = _point(0)
        p.add_new_points_or_box(state, 0, 1, points=points, labels=labels)
        for _ in p.propagate_in_video(state):
            pass
        stats = dict(state.memory_cache.stats)
        state.close()
    # Frame 0 (conditioning) and frames 1..10 (each read by the frames after it) are projected once each;
    # frame 11 is tracked last and read by nobody.
    assert stats["kv_misses"] == NUM_FRAMES - 1
    reads = sum(1 + min(t - 1, p.model.num_maskmem - 1) for t in range(1, NUM_FRAMES))
    assert stats["kv_hits"] == reads - stats["kv_misses"]


def _three_objects(p: SAM2VideoPredictor, frames: np.ndarray) -> list[torch.Tensor]:
    outputs = []
    with torch.inference_mode():
        state = p.init_state(frames)
        points, labels = _point(0)
        p.add_new_points_or_box(state, 0, 1, points=points, labels=labels)
        p.add_new_points_or_box(state, 0, 2, box=np.array(block_box(0)))
        points, labels = _point(2, dx=-4.0)
        p.add_new_points_or_box(state, 2, 3, points=points, labels=labels)  # a later first prompt
        for _, ids, masks in p.propagate_in_video(state):
            assert ids == [1, 2, 3]
            outputs.append(masks.clone())
        state.close()
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("kv_budget_mb", [256, 0], ids=["keys-values-kept", "memory-projected-whole"])
def test_objects_tracked_as_one_batch_match_tracking_them_one_by_one(kv_budget_mb):
    frames = make_frames(NUM_FRAMES)
    expected = _three_objects(_plain(), frames)
    batched = _variant(memory_kv_budget_mb=kv_budget_mb, batch_objects=True)
    calls = _CountCalls(batched.model.memory_attention)
    try:
        got = _three_objects(batched, frames)
    finally:
        calls.close()
    _assert_all_close(got, expected)
    # Frame 2 is prompted for object 3 only; every other frame after 0 tracks all three at once, and
    # objects whose memories have different shapes go in separate batches.
    assert max(calls.batches) == 3
    assert len(calls.batches) < 3 * (NUM_FRAMES - 1)


@pytest.mark.slow
def test_objects_are_batched_on_cuda_and_tracked_one_by_one_on_the_cpu_by_default():
    """Measured: batching three objects is slower on a 2-core CPU; an explicit choice wins."""
    frames = make_frames(NUM_FRAMES)
    default = _variant()
    assert default._batches_objects(torch.device("cuda"))
    assert not default._batches_objects(torch.device("cpu"))
    assert _variant(batch_objects=True)._batches_objects(torch.device("cpu"))
    calls = _CountCalls(default.model.memory_attention)
    try:
        got = _three_objects(default, frames)
    finally:
        calls.close()
    assert set(calls.batches) == {1}
    _assert_all_close(got, _three_objects(_plain(), frames))


@pytest.mark.slow
@pytest.mark.parametrize("option", ["memory_kv_budget_mb", "conditioned_cache_size"])
def test_cache_bounds_of_zero_keep_nothing(option):
    """Also: by default the CPU keeps no keys/values (measured slower there), CUDA does."""
    assert _variant()._kv_budget_bytes(torch.device("cpu")) == 0
    assert _variant()._kv_budget_bytes(torch.device("cuda")) > 0
    p = _variant(**{"memory_kv_budget_mb": 256, option: 0})
    with torch.inference_mode():
        state = p.init_state(make_frames(4))
        points, labels = _point(0)
        p.add_new_points_or_box(state, 0, 1, points=points, labels=labels)
        for _ in p.propagate_in_video(state):
            pass
        cache = state.memory_cache
        kept = cache.kv_bytes if option == "memory_kv_budget_mb" else len(cache._conditioned)
        state.close()
    assert kept == 0


def test_kept_keys_values_are_bounded_in_count_and_dropped_with_their_stored_output():
    from model.video.memory_cache import MemoryCache

    class Entry:
        def __init__(self) -> None:
            self.maskmem_features = torch.randn(1, 64, 16, 16).bfloat16()

    model = predictor().model
    cache = MemoryCache(kv_budget_bytes=2**30, kv_frames=3)
    pos = torch.randn(1, 64, 16, 16)
    entries = [Entry() for _ in range(5)]
    with torch.inference_mode():
        for one in entries:
            cache.frame_kv(model, one, pos, torch.float32, torch.device("cpu"))
        del one
        assert len(cache._frames) == 3  # the count bound, whatever the bytes
        per_frame = cache.kv_bytes // 3
        del entries[-1]  # a replaced output is released: its keys and values go with it
        assert len(cache._frames) == 2 and cache.kv_bytes == 2 * per_frame
        cache.frame_kv(model, entries[-1], pos, torch.float32, torch.device("cpu"))
    assert cache.stats["kv_hits"] == 1
