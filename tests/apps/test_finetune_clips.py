"""The generated clips of the fine-tuning benchmark (`benchmarks.finetune_clips`): DAVIS folders that the
training data check and the VOS evaluation read, reproducible from their seed, every object on frame 0."""

from __future__ import annotations

import numpy as np
from PIL import Image

from apps.vos.masks import frame_files, read_label_png
from benchmarks.finetune_clips import make_clip, write_clips
from model.training.data import check_sources, open_source

SIZE = (72, 56)  # width, height


def test_clips_are_davis_folders_the_training_check_accepts(tmp_path):
    names = write_clips(tmp_path, count=3, seed=5, num_frames=4, size=SIZE)
    source = open_source(tmp_path)
    report = check_sources([source], decode_frames=True)
    assert report.problems == []
    assert sorted(item.name for item in source.items) == sorted(names)
    assert all(len(item.frames) == 4 for item in source.items)
    for name in names:
        frames = frame_files(tmp_path / "JPEGImages" / name)
        assert [p.stem for p in frames] == ["00000", "00001", "00002", "00003"]
        assert Image.open(frames[0]).size == SIZE
        labels, palette = read_label_png(tmp_path / "Annotations" / name / "00000.png")
        assert palette is not None and labels.shape == (SIZE[1], SIZE[0])


def test_the_same_seed_gives_the_same_clip_and_another_seed_another():
    first = make_clip(np.random.default_rng((1, 0)), 3, SIZE)
    again = make_clip(np.random.default_rng((1, 0)), 3, SIZE)
    other = make_clip(np.random.default_rng((2, 0)), 3, SIZE)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_every_object_is_on_the_first_frame_and_the_shapes_move():
    for index in range(6):
        frames, labels = make_clip(np.random.default_rng((3, index)), 5, SIZE, max_shapes=3, min_shapes=2)
        assert frames.shape == (5, SIZE[1], SIZE[0], 3) and frames.dtype == np.uint8
        objects = set(np.unique(labels[0])) - {0}
        assert objects == set(range(1, int(labels.max()) + 1)) and 2 <= len(objects) <= 3
        assert not np.array_equal(labels[0], labels[-1])  # the shapes moved, turned or grew
