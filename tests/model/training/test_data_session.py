"""sam2-ui session files as training data: the saved masks on the saved frames, read through the engine's
own reader and media, behind the same interface as the dataset readers."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from apps.finetune.session_source import SessionSource, is_session_file, open_training_source
from model.training.data import ClipSampler, ClipSettings, DavisSource, TrainingDataError, check_sources
from tests.support.training_data import video_frames, video_labels, write_davis_video, write_session


def test_a_session_file_gives_its_masks_on_the_frames_that_have_them(tmp_path):
    path = write_session(tmp_path, num_frames=6, annotated=(1, 2, 4))
    source = open_training_source(path)
    assert isinstance(source, SessionSource)
    check_sources([source])
    (item,) = source.items
    assert item.frames == (1, 2, 4)
    assert item.visible == ((1, 2), (1, 2), (1,))  # the green block's mask on frame 4 is empty
    labels, frames = video_labels(6), video_frames(video_labels(6))
    for t in item.frames:
        masks = source.read_masks(item, t)
        assert set(masks) == set(item.visible[item.frames.index(t)])
        for obj, mask in masks.items():
            np.testing.assert_array_equal(mask, labels[t] == obj)
    read = source.read_frames(item, [4, 1])
    np.testing.assert_array_equal(read[4], frames[4])  # PNG frames: exact


def test_a_session_makes_clips_like_any_other_source_and_travels_to_workers(tmp_path):
    path = write_session(tmp_path, num_frames=6, annotated=(0, 1, 2, 3))
    sampler = ClipSampler(
        [SessionSource(path)], settings=ClipSettings(image_size=64, frames=4, augment=False)
    )
    clip = sampler.clip(0)
    assert clip.frame_indices == (0, 1, 2, 3) and sorted(clip.object_ids) == [1, 2]
    green = clip.object_ids.index(2)
    assert [bool(clip.masks[t, green].any()) for t in range(4)] == [True, True, True, False]
    other = pickle.loads(pickle.dumps(sampler))  # a data loader worker opens the video again
    np.testing.assert_array_equal(other.clip(0).frames, clip.frames)


def test_only_prompted_masks_can_be_asked_for(tmp_path):
    path = write_session(tmp_path, annotated=(1, 2, 4))
    source = SessionSource(path, origins=("prompt",))
    check_sources([source])
    assert source.items[0].frames == (1,)
    with pytest.raises(ValueError, match="origins"):
        SessionSource(path, origins=("guess",))


def test_a_session_whose_video_is_gone_or_without_masks_is_reported(tmp_path):
    path = write_session(tmp_path / "moved", annotated=(1,))
    shutil.rmtree(tmp_path / "moved" / "frames")
    empty = write_session(tmp_path / "empty", annotated=())
    with pytest.raises(TrainingDataError) as caught:
        check_sources([SessionSource(path), SessionSource(empty)])
    lines = caught.value.report.problem_lines()
    assert len(lines) == 2
    assert "the session cannot be loaded" in lines[0] and "not there anymore" in lines[0]
    assert "no prompt or propagation masks saved in it" in lines[1] and "save the session again" in lines[1]


def test_a_damaged_session_file_is_reported_in_the_engines_words(tmp_path):
    path = write_session(tmp_path, annotated=(1,))
    document = json.loads(path.read_text())
    document["masks"][0]["frame"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(TrainingDataError, match="cannot be loaded.*frame 99 is outside"):
        check_sources([SessionSource(path)])


def test_open_training_source_tells_session_files_from_datasets(tmp_path):
    session = write_session(tmp_path / "s", annotated=(1,))
    write_davis_video(tmp_path / "d", "v", num_frames=2)
    assert is_session_file(session) and not is_session_file(tmp_path / "d")
    assert isinstance(open_training_source(tmp_path / "d"), DavisSource)
    with pytest.raises(TrainingDataError, match="JPEGImages"):
        open_training_source(tmp_path / "s" / "frames")


def test_a_moved_video_is_given_as_source_and_another_video_is_refused(tmp_path):
    path = write_session(tmp_path / "s", annotated=(1,))
    moved = shutil.move(tmp_path / "s" / "frames", tmp_path / "elsewhere")
    source = SessionSource(path, source=moved)
    check_sources([source])
    assert source.items[0].frames == (1,)
    write_davis_video(tmp_path / "d", "v", num_frames=6)
    with pytest.raises(
        TrainingDataError, match="its video cannot be opened as the session saw it.*same video"
    ):
        check_sources([SessionSource(path, source=tmp_path / "d" / "JPEGImages" / "v")])


def test_a_session_on_one_image_trains_as_images_do_in_one_frame_clips(tmp_path):
    image = SessionSource(write_session(tmp_path / "image", annotated=(0,), image=True))
    video = SessionSource(write_session(tmp_path / "video", annotated=(0, 1, 2, 3)))
    settings = ClipSettings(image_size=32, frames=4, augment=False)
    sampler = ClipSampler([image, video], settings=settings)
    assert image.images and not video.images
    lengths = set()
    for m in range(6):
        clip = sampler.clip(m)
        assert clip.frames.shape[0] == (1 if clip.source.startswith(image.name) else 4)
        assert clip.masks[0].reshape(len(clip.object_ids), -1).any(axis=1).all()
        lengths.add(clip.frames.shape[0])
    assert lengths == {1, 4}
