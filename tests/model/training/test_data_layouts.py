"""Each data layout's reader finds the annotated frames and reads the masks written on them, and
`open_source` recognises every layout (or says which ones it accepts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from model.training.data import (
    ClipSampler,
    ClipSettings,
    CocoSource,
    DavisSource,
    SA1BSource,
    SAVSource,
    TrainingDataError,
    open_source,
)
from tests.support.training_data import (
    HEIGHT,
    WIDTH,
    coco_masks,
    frame_level,
    write_coco,
    write_davis_video,
    write_sa1b_image,
    write_sav_video,
)


def background_level(frame: np.ndarray) -> float:
    """The grey level of a frame's top-right corner (no object is drawn there)."""
    return float(frame[:6, -6:].mean())


def test_davis_reads_the_palette_masks_of_every_frame_with_void_as_background(tmp_path):
    labels = write_davis_video(tmp_path, "bear", num_frames=6)
    source = open_source(tmp_path)
    assert isinstance(source, DavisSource)
    assert source.check() == []
    (item,) = source.items
    assert item.frames == (0, 1, 2, 3, 4, 5)
    assert item.visible == ((1, 2), (1, 2), (1, 2), (1,), (1,), (1,))
    for t in item.frames:
        masks = source.read_masks(item, t)
        assert set(masks) == ({1, 2} if t <= 2 else {1})  # 255 (void) on frame 1 is no object
        for obj, mask in masks.items():
            np.testing.assert_array_equal(mask, labels[t] == obj)
    frames = source.read_frames(item, [4, 1])
    assert sorted(frames) == [1, 4]
    assert frames[4].shape == (HEIGHT, WIDTH, 3)
    assert abs(background_level(frames[4]) - frame_level(4)) < 3


def test_youtube_vos_sparse_annotations_make_only_the_annotated_frames_training_frames(tmp_path):
    write_davis_video(tmp_path, "ytvos", num_frames=11, annotated=(0, 5, 10))
    source = open_source(tmp_path)
    assert source.check() == []
    assert source.items[0].frames == (0, 5, 10)
    settings = ClipSettings(image_size=32, frames=3, objects=3, augment=False)
    clip = ClipSampler([source], settings=settings).clip(0)
    assert clip.frame_indices == (0, 5, 10)
    assert [round(background_level(f) / 4) for f in clip.frames] == [
        round(frame_level(t) / 4) for t in (0, 5, 10)
    ]


def test_davis_2017_resolution_folder_and_a_video_list_are_followed(tmp_path):
    write_davis_video(tmp_path, "480p/bear", num_frames=2)
    write_davis_video(tmp_path, "480p/camel", num_frames=2)
    (tmp_path / "train.txt").write_text("camel\n")
    source = open_source(tmp_path, videos=tmp_path / "train.txt")
    assert source.check() == []
    assert [item.name for item in source.items] == ["camel"]


def test_a_square_video_without_augmentation_comes_out_as_written(tmp_path):
    labels = write_davis_video(tmp_path, "square", num_frames=4, height=48, width=48)
    source = open_source(tmp_path)
    settings = ClipSettings(image_size=48, frames=4, objects=3, augment=False)
    clip = ClipSampler([source], settings=settings).clip(3)
    assert clip.frame_indices == (0, 1, 2, 3)
    assert sorted(clip.object_ids) == [1, 2]
    for t in range(4):
        jpeg = np.asarray(Image.open(tmp_path / "JPEGImages" / "square" / f"{t:05d}.jpg").convert("RGB"))
        np.testing.assert_array_equal(clip.frames[t], jpeg)
        for k, obj in enumerate(clip.object_ids):
            np.testing.assert_array_equal(clip.masks[t, k], labels[t] == obj)


def test_sav_reads_the_masklet_on_every_4th_frame_decoded_from_the_mp4(tmp_path):
    labels = write_sav_video(tmp_path, "sav_000001", num_frames=13)
    source = open_source(tmp_path)
    assert isinstance(source, SAVSource)
    assert source.check() == []
    (item,) = source.items
    assert item.frames == (0, 4, 8, 12)
    assert source.visible_objects(item, 0) == (0, 1)
    assert source.visible_objects(item, 1) == (0,)  # the green block left after frame 2
    masks = source.read_masks(item, 4)
    assert set(masks) == {0}
    np.testing.assert_array_equal(masks[0], labels[4] == 1)
    frames = source.read_frames(item, [12, 8])
    assert [round(background_level(frames[t])) for t in (8, 12)] == pytest.approx(
        [frame_level(8), frame_level(12)], abs=3
    )
    settings = ClipSettings(image_size=32, frames=3, objects=2, augment=False)
    sampler = ClipSampler([source], settings=settings)
    for index in range(3):
        clip = sampler.clip(index)
        assert all(t % 4 == 0 for t in clip.frame_indices)
        levels = [background_level(frame) for frame in clip.frames]
        assert levels == pytest.approx([frame_level(t) for t in clip.frame_indices], abs=3)


def test_sav_videos_are_found_in_subfolders_as_the_download_lays_them_out(tmp_path):
    write_sav_video(tmp_path / "sav_000", "sav_000001", num_frames=5)
    write_sav_video(tmp_path / "sav_001", "sav_001001", num_frames=5)
    source = open_source(tmp_path)
    source.check()
    assert [item.name for item in source.items] == ["sav_000/sav_000001", "sav_001/sav_001001"]


def test_coco_reads_compressed_and_uncompressed_rle_and_polygons_and_leaves_out_crowds(tmp_path):
    path = write_coco(tmp_path)
    source = open_source(path)
    assert isinstance(source, CocoSource)
    assert source.check() == []
    assert source.image_root == (tmp_path / "images").resolve()
    items = {item.name: item for item in source.items}
    assert items["a.jpg"].visible == ((11, 12),)  # the crowd annotation 99 is left out
    assert items["b.jpg"].visible == ((21, 22),)  # the empty annotation 98 is left out
    expected = coco_masks()
    for name, item in items.items():
        masks = source.read_masks(item, 0)
        for obj, mask in masks.items():
            if obj == 22:  # a polygon: its outline is rasterised, so compare by overlap
                overlap = (mask & expected[name][obj]).sum() / (mask | expected[name][obj]).sum()
                assert overlap > 0.85
            else:
                np.testing.assert_array_equal(mask, expected[name][obj])
    assert source.read_frames(items["b.jpg"], [0])[0].shape == (HEIGHT, WIDTH, 3)


def test_sa1b_images_are_one_frame_videos_whose_objects_are_the_nonempty_annotations(tmp_path):
    masks = write_sa1b_image(tmp_path, "sa_1")
    source = open_source(tmp_path)
    assert isinstance(source, SA1BSource)
    assert source.check() == []
    (item,) = source.items
    assert item.frames == (0,) and item.visible == ((0, 2),)
    read = source.read_masks(item, 0)
    np.testing.assert_array_equal(read[0], masks[0])
    np.testing.assert_array_equal(read[2], masks[2])
    clip = ClipSampler(
        [source], settings=ClipSettings(image_size=16, frames=1, objects=3, augment=False)
    ).clip(0)
    assert clip.frames.shape == (1, 16, 16, 3) and clip.masks.shape == (1, 2, 16, 16)


def test_open_source_names_the_accepted_layouts_when_none_matches(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(TrainingDataError) as caught:
        open_source(tmp_path)
    message = str(caught.value)
    for layout in ("JPEGImages", "SA-V", "SA-1B", "COCO", "session"):
        assert layout in message
    with pytest.raises(TrainingDataError, match="no file or folder"):
        open_source(tmp_path / "missing")


def test_open_source_points_to_the_right_folder_for_annotation_files_given_alone(tmp_path):
    write_sav_video(tmp_path, "sav_1", num_frames=5)
    with pytest.raises(TrainingDataError, match="SA-V annotation file: give the folder"):
        open_source(tmp_path / "sav_1_manual.json")
    write_davis_video(tmp_path / "MOSE" / "train", "v", num_frames=2)
    with pytest.raises(TrainingDataError, match="give one of those folders"):
        open_source(tmp_path / "MOSE")
    with pytest.raises(TrainingDataError, match="give the folder that holds JPEGImages"):
        open_source(tmp_path / "MOSE" / "train" / "JPEGImages")
    session = tmp_path / "session.json"
    session.write_text(json.dumps({"format": "sam2-ui-session", "version": 1}))
    with pytest.raises(TrainingDataError, match="session file: the fine-tune app reads it"):
        open_source(session)


def test_a_checked_source_reads_the_same_after_pickling(tmp_path):
    import pickle

    write_sav_video(tmp_path, "sav_1", num_frames=5)
    source = open_source(tmp_path)
    source.check()
    item = source.items[0]
    source.read_masks(item, 0)  # fills the masklet cache, which does not travel
    copy = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(copy.read_masks(item, 4)[0], source.read_masks(item, 4)[0])
