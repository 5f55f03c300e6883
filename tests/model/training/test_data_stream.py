"""The stream of training clips: which source each micro-batch draws from and which video each clip takes, a
function of the seed and the numbers only, with each epoch of a source one pass over its videos."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from model.training.data.stream import BLOCK, ClipStream


def test_a_clip_has_the_same_video_in_any_process_in_any_order_and_after_a_resume():
    stream = ClipStream([7, 3], [0.6, 0.4], seed=3)
    count = BLOCK + 100  # across the first block of micro-batches
    walked = {(m, c): stream.video_of(m, c, 2) for m in range(count) for c in range(2)}
    asked = [(BLOCK + 99, 1), (5, 0), (BLOCK, 0), (0, 1), (BLOCK - 1, 1)]
    fresh, copied = ClipStream([7, 3], [0.6, 0.4], seed=3), pickle.loads(pickle.dumps(stream))
    for m, c in asked:  # a resumed run starts late; a worker is a copy
        assert fresh.video_of(m, c, 2) == copied.video_of(m, c, 2) == walked[(m, c)]
    other_seed = ClipStream([7, 3], [0.6, 0.4], seed=4)
    assert [other_seed.video_of(m, 0, 2) for m in range(50)] != [walked[(m, 0)] for m in range(50)]


def test_each_epoch_of_a_source_is_one_pass_over_its_videos_in_a_new_order():
    sizes = [5, 3]
    stream = ClipStream(sizes, [0.5, 0.5], seed=0)
    taken: dict[int, list[int]] = {0: [], 1: []}
    for m in range(300):
        for c in range(2):
            source, video = stream.video_of(m, c, 2)
            assert source == stream.source_of(m)  # one source per micro-batch
            taken[source].append(video)
    for source, videos in taken.items():
        n = sizes[source]
        epochs = [videos[start : start + n] for start in range(0, len(videos) - n + 1, n)]
        assert all(sorted(epoch) == list(range(n)) for epoch in epochs)
        assert len({tuple(epoch) for epoch in epochs}) > 1


def test_sources_are_drawn_by_weight_and_a_bad_clip_number_is_refused():
    stream = ClipStream([2, 2, 2], [0.2, 0.3, 0.5], seed=1)
    draws = np.array([stream.source_of(m) for m in range(6000)])
    for source, share in enumerate((0.2, 0.3, 0.5)):
        assert abs((draws == source).mean() - share) < 4 * np.sqrt(share * (1 - share) / 6000)
    with pytest.raises(IndexError):
        stream.video_of(0, 2, 2)
    with pytest.raises(IndexError):
        stream.video_of(-1, 0, 1)
