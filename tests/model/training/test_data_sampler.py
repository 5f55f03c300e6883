"""The clip sampler: the official uniform sampler's frames and objects, deterministic per (seed, micro-batch,
clip), a source per micro-batch mixed by weight, images as 1-frame clips, short videos left out as the
official (played forward and back only when no video is long enough), and damaged items skipped."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from model.training.data import ClipSampler, ClipSettings, open_source
from model.training.data.planner import bounce
from tests.support.training_data import write_coco, write_davis_video, write_sa1b_image


@pytest.fixture
def davis(tmp_path):
    root = tmp_path / "davis"
    for name, frames in (("bear", 10), ("camel", 7)):
        write_davis_video(root, name, num_frames=frames)
    return root


def sampler_of(path, **settings) -> ClipSampler:
    defaults = dict(image_size=32, frames=4, objects=3)
    return ClipSampler([open_source(path)], settings=ClipSettings(**{**defaults, **settings}))


def same_clip(a, b) -> bool:
    return (
        a.frame_indices == b.frame_indices
        and a.object_ids == b.object_ids
        and np.array_equal(a.frames, b.frames)
        and np.array_equal(a.masks, b.masks)
    )


def test_the_same_seed_and_index_give_the_same_clip_in_any_order_and_process(davis):
    first = sampler_of(davis, seed=7)
    clips = [first.clip(i) for i in range(6)]
    # Another process (a data loader worker, another rank, a resumed run) asks in another order.
    other = pickle.loads(pickle.dumps(sampler_of(davis, seed=7)))
    for i in reversed(range(6)):
        assert same_clip(other.clip(i), clips[i])
    assert not all(same_clip(clips[0], clip) for clip in clips[1:])
    assert not same_clip(sampler_of(davis, seed=8).clip(0), clips[0])


def test_rank_slices_of_the_micro_batches_are_the_micro_batches_of_one_process(davis):
    sampler = sampler_of(davis, augment=False)
    whole = [[clip.frame_indices for clip in sampler.micro_batch(m, 2)] for m in range(6)]
    ranks = {
        r: [
            [clip.frame_indices for clip in sampler_of(davis, augment=False).micro_batch(m, 2)]
            for m in (r, r + 2, r + 4)
        ]
        for r in (0, 1)
    }
    assert ranks[0] == whole[0::2] and ranks[1] == whole[1::2]


def test_mixture_picks_a_source_per_micro_batch_with_the_frequency_of_its_weight(tmp_path):
    write_davis_video(tmp_path / "a", "v", num_frames=4)
    write_sa1b_image(tmp_path / "b", "sa_1")
    sources = [open_source(tmp_path / "a"), open_source(tmp_path / "b")]
    sampler = ClipSampler(sources, weights=[3, 1], settings=ClipSettings(image_size=16, frames=2, objects=1))
    draws = np.array([sampler.source_of(m) for m in range(2000)])
    share = (draws == 0).mean()
    assert abs(share - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 2000)  # within 4 standard errors
    for m in range(6):  # every clip of a micro-batch comes from the source it picks
        assert all(clip.source.startswith(sources[draws[m]].name) for clip in sampler.micro_batch(m, 2))


def test_images_are_one_frame_clips_in_micro_batches_of_their_own(tmp_path):
    write_davis_video(tmp_path / "videos", "v", num_frames=6)
    write_sa1b_image(tmp_path / "sa1b", "sa_1")
    sources = [
        open_source(tmp_path / "videos"),
        open_source(tmp_path / "sa1b"),
        open_source(write_coco(tmp_path)),
    ]
    settings = ClipSettings(image_size=16, frames=4, objects=2, augment=False)
    sampler = ClipSampler(sources, settings=settings)
    lengths = set()
    for m in range(12):
        clips = sampler.micro_batch(m, 3)
        image = sampler.sources[sampler.source_of(m)].images
        assert {clip.frames.shape[0] for clip in clips} == {1 if image else 4}
        assert {clip.masks.shape[0] for clip in clips} == {1 if image else 4}
        lengths.add(clips[0].frames.shape[0])
    assert lengths == {1, 4}  # both kinds came up


def test_an_epoch_of_a_source_is_one_pass_over_its_videos(tmp_path):
    for name in ("a", "b", "c", "d", "e"):
        write_davis_video(tmp_path, name, num_frames=2)
    sampler = sampler_of(tmp_path, frames=2, augment=False)
    names = [clip.source.rsplit(": ", 1)[1] for m in range(5) for clip in sampler.micro_batch(m, 2)]
    assert sorted(names[:5]) == sorted(names[5:]) == ["a", "b", "c", "d", "e"]
    assert names[:5] != names[5:]  # each epoch in its own order


def test_frames_are_consecutive_annotated_frames_and_objects_are_visible_on_the_first(davis):
    sampler = sampler_of(davis, frames=4, objects=3, augment=False)
    for i in range(10):
        clip = sampler.clip(i)
        start = clip.frame_indices[0]
        assert clip.frame_indices == tuple(range(start, start + 4))
        # The green block (object 2) shows only on frames 0-2: it is chosen only when the clip starts there.
        assert set(clip.object_ids) == ({1, 2} if start <= 2 else {1})
        assert clip.masks[0].reshape(len(clip.object_ids), -1).any(axis=1).all()


def test_objects_that_leave_the_video_get_empty_masks(tmp_path):
    write_davis_video(tmp_path, "leaving", num_frames=6)
    clip = sampler_of(tmp_path, frames=6, objects=3, augment=False).clip(0)
    assert clip.frame_indices == (0, 1, 2, 3, 4, 5)
    green = clip.object_ids.index(2)
    assert [bool(clip.masks[t, green].any()) for t in range(6)] == [True, True, True, False, False, False]


def test_at_most_k_objects_are_chosen(davis):
    for i in range(5):
        assert len(sampler_of(davis, objects=1).clip(i).object_ids) == 1


def test_a_reversed_clip_chooses_its_objects_on_its_own_first_frame(tmp_path):
    write_davis_video(tmp_path, "v", num_frames=6)
    clip = sampler_of(tmp_path, frames=6, reverse_time_prob=1.0, augment=False).clip(0)
    assert clip.frame_indices == (5, 4, 3, 2, 1, 0)
    assert clip.object_ids == (1,)  # the green block is not on frame 5


def test_short_videos_are_left_out_as_the_official_and_the_report_says_so(tmp_path):
    write_davis_video(tmp_path, "short", num_frames=3)
    write_davis_video(tmp_path, "long", num_frames=8)
    sampler = sampler_of(tmp_path, frames=8, augment=False)
    assert {sampler.clip(m).source.rsplit(": ", 1)[1] for m in range(4)} == {"long"}
    assert sampler.num_videos == 1
    (note,) = sampler.notes
    assert "1 of 2 videos have fewer than 8 annotated frames: left out" in note
    assert sampler.report.text().count(note) == 1


def test_short_videos_play_forward_and_back_only_when_no_video_is_long_enough(tmp_path):
    write_davis_video(tmp_path, "short", num_frames=3)
    sampler = sampler_of(tmp_path, frames=8, augment=False)
    clip = sampler.clip(0)
    assert clip.frame_indices == (0, 1, 2, 1, 0, 1, 2, 1)
    assert clip.frames.shape[0] == 8 and clip.masks.shape[0] == 8
    (note,) = sampler.notes
    assert "No video has 8 annotated frames: videos play forward and back" in note
    assert sampler.report.text().count("forward and back") == 1


def test_bounce_plays_a_list_forward_and_back():
    assert bounce(1, 4) == [0, 0, 0, 0]
    assert bounce(2, 5) == [0, 1, 0, 1, 0]
    assert bounce(4, 9) == [0, 1, 2, 3, 2, 1, 0, 1, 2]


def test_a_frame_damaged_after_the_check_is_skipped_with_a_warning(davis):
    sampler = sampler_of(davis, frames=7, augment=False)
    (davis / "JPEGImages" / "camel" / "00003.jpg").write_bytes(b"not a jpeg any more")
    with pytest.warns(UserWarning, match="camel skipped"):
        clips = [sampler.clip(i) for i in range(8)]
    assert {clip.source.rsplit(": ", 1)[1] for clip in clips} == {"bear"}


def test_weights_must_be_positive_and_one_per_source(davis):
    source = open_source(davis)
    with pytest.raises(ValueError, match="one positive weight per source"):
        ClipSampler([source], weights=[1, 2])
    with pytest.raises(ValueError, match="one positive weight per source"):
        ClipSampler([source], weights=[0])
    with pytest.raises(ValueError, match="short_videos"):
        ClipSettings(short_videos="pad")
    assert ClipSettings().short_videos == "skip"
