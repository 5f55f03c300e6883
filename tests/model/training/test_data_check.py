"""The data check before training: every bad item found is one line of the report and is skipped, the same
problem in many items is one line, and nothing usable left is one error holding the whole report."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from model.training.data import (
    ClipSampler,
    ClipSettings,
    DataReport,
    TrainingDataError,
    check_sources,
    open_source,
)
from tests.support.training_data import (
    save_labels,
    video_labels,
    write_coco,
    write_davis_video,
    write_sa1b_image,
    write_sav_video,
)


def break_empty_frame_folder(root):
    (root / "JPEGImages" / "bad").mkdir(parents=True)
    save_labels(root / "Annotations" / "bad" / "00000.png", video_labels(1)[0])


def break_mask_size(root):
    write_davis_video(root, "bad", num_frames=3)
    save_labels(root / "Annotations" / "bad" / "00001.png", np.ones((10, 10), np.uint8))


def break_jpeg(root):
    write_davis_video(root, "bad", num_frames=3)
    (root / "JPEGImages" / "bad" / "00002.jpg").write_bytes(b"\xff\xd8 cut short")


def break_png(root):
    write_davis_video(root, "bad", num_frames=3)
    (root / "Annotations" / "bad" / "00000.png").write_bytes(b"\x89PNG damaged")


def colour_png(root):
    write_davis_video(root, "bad", num_frames=3)
    Image.new("RGB", (64, 48), (255, 0, 0)).save(root / "Annotations" / "bad" / "00000.png")


def no_object(root):
    write_davis_video(root, "bad", num_frames=3)
    for t in range(3):
        save_labels(root / "Annotations" / "bad" / f"{t:05d}.png", np.zeros((48, 64), np.uint8))


def no_annotation_folder(root):
    write_davis_video(root, "bad", num_frames=2)
    shutil.rmtree(root / "Annotations" / "bad")


# (how to break a video, words of the report line, whether the video survives with fewer frames)
DAVIS_CASES = {
    "video folder without frames": (break_empty_frame_folder, "holds no JPEG or PNG frames", False),
    "mask size differs from its frame": (break_mask_size, "differ in size from their frames", True),
    "unreadable JPEG": (break_jpeg, "frame images cannot be read", True),
    "unreadable annotation PNG": (break_png, "annotation PNGs cannot be read", True),
    "colour PNG instead of labels": (colour_png, "not label images", True),
    "video with no annotated object": (no_object, "no object on any annotation PNG", False),
    "frames without annotations": (no_annotation_folder, "no annotation folder", False),
}


@pytest.mark.parametrize("case", DAVIS_CASES)
def test_each_bad_davis_video_is_one_line_and_is_skipped(tmp_path, case):
    damage, words, survives = DAVIS_CASES[case]
    write_davis_video(tmp_path, "good", num_frames=3)
    damage(tmp_path)
    source = open_source(tmp_path)
    report = check_sources([source], workers=2)
    lines = report.problem_lines()
    assert len(lines) == 1 and words in lines[0] and ": bad: " in lines[0], lines
    names = {item.name: item for item in source.items}
    assert "good" in names and names["good"].frames == (0, 1, 2)
    if survives:
        assert len(names["bad"].frames) == 2  # the bad frame left out, the rest kept
    else:
        assert "bad" not in names
    assert lines[0] in report.text()


def test_an_empty_split_is_reported_and_nothing_usable_raises_the_whole_report(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations").mkdir()
    with pytest.raises(TrainingDataError) as caught:
        check_sources([open_source(tmp_path)])
    assert "no videos" in str(caught.value)
    assert isinstance(caught.value.report, DataReport) and not caught.value.report.usable


def test_when_no_source_is_usable_the_error_holds_every_problem_line(tmp_path):
    write_davis_video(tmp_path / "a", "v", num_frames=2)
    break_jpeg(tmp_path / "a")
    no_object(tmp_path / "a")  # rewrites "bad" with empty masks (its damaged JPEG stays)
    shutil.rmtree(tmp_path / "a" / "JPEGImages" / "v")
    sav = tmp_path / "b"
    write_sav_video(sav, "x", num_frames=5)
    (sav / "x_manual.json").write_text(json.dumps({"video_id": "x"}))
    sources = [open_source(tmp_path / "a"), open_source(sav)]
    with pytest.raises(TrainingDataError) as caught:
        check_sources(sources)
    message = str(caught.value)
    for line in caught.value.report.problem_lines():
        assert line in message
    assert "not an SA-V annotation file" in message
    assert "no frame folder JPEGImages/v" in message


def test_the_same_problem_in_many_videos_is_one_line_with_a_count(tmp_path):
    write_davis_video(tmp_path, "good", num_frames=2)
    for k in range(8):
        (tmp_path / "JPEGImages" / f"empty{k}").mkdir()
        save_labels(tmp_path / "Annotations" / f"empty{k}" / "00000.png", video_labels(1)[0])
    report = check_sources([open_source(tmp_path)])
    (line,) = report.problem_lines()
    assert "in 8 items (empty0, empty1, empty2, ...)" in line
    assert len(report.problems) == 8
    assert "1 usable video with 2 annotated frames, 8 skipped" in report.text()


def test_sav_problems_are_reported_per_video(tmp_path):
    write_sav_video(tmp_path, "good", num_frames=5)
    write_sav_video(tmp_path, "long", num_frames=9)
    document = json.loads((tmp_path / "long_manual.json").read_text())
    document["masklet"].append(document["masklet"][-1])  # frame 12 of a 9-frame video
    document["masklet"][1][0]["size"] = [10, 10]
    (tmp_path / "long_manual.json").write_text(json.dumps(document))
    (tmp_path / "lost_manual.json").write_text((tmp_path / "good_manual.json").read_text())
    source = open_source(tmp_path)
    lines = check_sources([source]).problem_lines()
    assert len(lines) == 3
    assert any("long: annotations past the end of the video (1: frame 12 of 9)" in line for line in lines)
    assert any("long: masks that do not fit the video" in line and "10x10" in line for line in lines)
    assert any("lost: no video file lost.mp4" in line for line in lines)
    assert {item.name: item.frames for item in source.items} == {"good": (0, 4), "long": (0, 8)}


def test_coco_images_missing_or_of_another_size_are_skipped(tmp_path):
    path = write_coco(tmp_path)
    (tmp_path / "images" / "a.jpg").unlink()
    Image.new("RGB", (10, 10)).save(tmp_path / "images" / "b.jpg")
    (tmp_path / "images" / "a.jpg").write_bytes(b"")
    with pytest.raises(TrainingDataError) as caught:
        check_sources([open_source(path)])
    lines = caught.value.report.problem_lines()
    assert any("a.jpg: the image cannot be read" in line for line in lines)
    assert any("b.jpg: the image's size differs from the JSON's (the file is 10x10" in line for line in lines)


def test_decoding_every_frame_finds_a_jpeg_cut_after_its_header(tmp_path):
    write_davis_video(tmp_path, "good", num_frames=2)
    write_davis_video(tmp_path, "cut", num_frames=2)
    jpeg = tmp_path / "JPEGImages" / "cut" / "00001.jpg"
    data = jpeg.read_bytes()
    jpeg.write_bytes(data[: len(data) // 2])  # the header whole, the pixels cut short
    source = open_source(tmp_path)
    quick = check_sources([source])
    assert [item.name for item in source.items] == ["cut", "good"] and not quick.problems
    thorough = check_sources([source], decode_frames=True)
    (line,) = thorough.problem_lines()
    assert "cut: a frame cannot be decoded" in line
    assert [item.name for item in source.items] == ["good"]


def restored_copy(path):
    """What another process makes of the data: the same path opened and restored from the check's result."""
    checked = open_source(path)
    check_sources([checked])
    other = open_source(path)
    other.restore(pickle.loads(pickle.dumps(checked.usable())), checked.skipped)
    return checked, other


@pytest.mark.parametrize("layout", ["davis", "sav", "coco", "sa1b"])
def test_a_source_restored_from_another_process_check_makes_the_same_clips(tmp_path, layout):
    if layout == "davis":
        write_davis_video(tmp_path, "good", num_frames=5)
        break_png(tmp_path)  # "bad": its frame 0 left out by the check
        path = tmp_path
    elif layout == "sav":
        write_sav_video(tmp_path, "a", num_frames=13)
        write_sav_video(tmp_path, "b", num_frames=9)
        path = tmp_path
    elif layout == "coco":
        path = write_coco(tmp_path)
    else:
        write_sa1b_image(tmp_path, "sa_1")
        write_sa1b_image(tmp_path, "sa_2")
        path = tmp_path
    checked, other = restored_copy(path)
    assert [(item.name, item.frames) for item in other.items] == checked.usable()
    assert other.skipped == checked.skipped and other.checked
    settings = ClipSettings(image_size=32, frames=2, objects=2)
    samplers = [ClipSampler([source], settings=settings) for source in (checked, other)]
    for m in range(4):
        for a, b in zip(*(sampler.micro_batch(m, 2) for sampler in samplers)):
            assert a.source == b.source and a.frame_indices == b.frame_indices
            assert a.object_ids == b.object_ids
            np.testing.assert_array_equal(a.frames, b.frames)
            np.testing.assert_array_equal(a.masks, b.masks)


def test_a_source_changed_since_the_check_is_refused_on_restore(tmp_path):
    write_davis_video(tmp_path, "v", num_frames=3)
    checked = open_source(tmp_path)
    check_sources([checked])
    shutil.rmtree(tmp_path / "Annotations" / "v")
    with pytest.raises(TrainingDataError, match="v cannot be read as the check found it"):
        open_source(tmp_path).restore(checked.usable())


def test_one_bit_and_sixteen_bit_label_pngs_are_read_as_apps_vos_reads_them(tmp_path):
    labels = write_davis_video(tmp_path, "bits", num_frames=2)
    Image.fromarray(labels[0] == 1).save(tmp_path / "Annotations" / "bits" / "00000.png")  # mode "1"
    wide = labels[1].astype(np.uint16)
    wide[0, 0] = 300  # an id that does not fit a byte
    Image.fromarray(wide).save(tmp_path / "Annotations" / "bits" / "00001.png")  # 16 bits
    source = open_source(tmp_path)
    (line,) = check_sources([source]).problem_lines()
    assert "bits: annotation PNGs hold object ids above 255" in line and "00001.png" in line
    (item,) = source.items
    assert item.frames == (0,) and item.visible == ((1,),)
    np.testing.assert_array_equal(source.read_masks(item, 0)[1], labels[0] == 1)
