"""``python -m apps.vos.inference`` against the official ``tools/vos_inference.py`` semantics driven on the
official predictor (same random weights), plus resuming, sharding and bad input.

Our side runs through the command line (``main(argv)``) on the official-format random-weight checkpoint;
the official side is `tests.support.official_vos` on ``sam2==1.1.0`` built from the same file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from apps.vos import inference as vos_inference
from apps.vos import masks as vos_masks
from apps.vos.inference import list_videos, main, parse_shard, shard
from apps.vos.merge import LabelMerger
from model.loading.configs import resolve_config
from model.video.non_overlap import apply_non_overlap
from tests.support.official_vos import official_vos_video, voc_palette
from tests.support.vos_datasets import (
    assert_same_outputs,
    frames_dir,
    masks_dir,
    output_files,
    write_palette_dataset,
    write_palette_video,
    write_per_object_dataset,
)

LATER = "--track_object_appearing_later_in_video"


@pytest.fixture(scope="module")
def palette_root(tmp_path_factory) -> Path:
    return write_palette_dataset(tmp_path_factory.mktemp("palette"))


@pytest.fixture(scope="module")
def per_object_root(tmp_path_factory) -> Path:
    return write_per_object_dataset(tmp_path_factory.mktemp("per_object"))


def cli(root: Path, out: Path, checkpoint: Path, *flags: str) -> list[str]:
    return [
        "--base_video_dir",
        str(frames_dir(root)),
        "--input_mask_dir",
        str(masks_dir(root)),
        "--output_mask_dir",
        str(out),
        "--checkpoint",
        str(checkpoint),
        "--config",
        "sam2.1_hiera_tiny",
        "--image_size",
        "256",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        *flags,
    ]


@pytest.fixture(scope="module")
def official_predictors(random_checkpoint):
    """The official video predictor on the same checkpoint, by ``per_object`` (non_overlap_masks off)."""
    from sam2.build_sam import build_sam2_video_predictor as official_build_video

    from benchmarks.compare_setup import silence_official_progress_bars

    silence_official_progress_bars()
    built = {}

    def get(per_object: bool):
        if per_object not in built:
            built[per_object] = official_build_video(
                resolve_config("sam2.1_hiera_tiny").official_config,
                str(random_checkpoint),
                device="cpu",
                hydra_overrides_extra=[
                    "++model.image_size=256",
                    f"++model.non_overlap_masks={'false' if per_object else 'true'}",
                ],
                apply_postprocessing=False,
            )
        return built[per_object]

    return get


def run_official(predictor, root: Path, out: Path, videos: list[str], **semantics) -> dict:
    """The official semantics into ``out``; returns the undecided pixels by (video, frame name)."""
    undecided = {}
    for video in videos:
        by_frame = official_vos_video(predictor, frames_dir(root), masks_dir(root), out, video, **semantics)
        undecided.update({(video, name): pixels for name, pixels in by_frame.items()})
    return undecided


@pytest.fixture(scope="module")
def clean_palette_run(palette_root, random_checkpoint, tmp_path_factory) -> Path:
    """Our default-mode run over the palette dataset, uninterrupted (the reference for resume and shards)."""
    out = tmp_path_factory.mktemp("clean") / "out"
    assert main(cli(palette_root, out, random_checkpoint)) == 0
    return out


# ---------------------------------------------------------------------------------------------- parity


@pytest.mark.parity
def test_default_mode_matches_official(clean_palette_run, palette_root, official_predictors, tmp_path):
    ties = run_official(official_predictors(False), palette_root, tmp_path / "ref", ["clip_a", "clip_b"])
    assert assert_same_outputs(clean_palette_run, tmp_path / "ref", False, ties) == 12
    # clip_a's input palette is carried over; clip_b's grey-level masks give the DAVIS palette.
    with Image.open(clean_palette_run / "clip_b" / "00000.png") as image:
        assert image.getpalette() == voc_palette()[: len(image.getpalette())]


@pytest.mark.parity
@pytest.mark.parametrize(
    "layout, flags",
    [
        ("palette", [LATER]),
        ("palette", [LATER, "--use_all_masks"]),
        ("per_object", []),
        ("per_object", [LATER]),
        ("per_object", ["--use_all_masks"]),
    ],
    ids=["later", "later-all-masks", "per-object", "per-object-later", "per-object-all-masks"],
)
def test_modes_match_official(
    layout, flags, palette_root, per_object_root, random_checkpoint, official_predictors, tmp_path
):
    per_object = layout == "per_object"
    root = per_object_root if per_object else palette_root
    videos = ["clip_c"] if per_object else ["clip_a", "clip_b"]
    layout_flags = ["--per_obj_png_file"] if per_object else []
    assert main(cli(root, tmp_path / "ours", random_checkpoint, *layout_flags, *flags)) == 0
    semantics = dict(
        per_object=per_object, track_later=LATER in flags, use_all_masks="--use_all_masks" in flags
    )
    ties = run_official(official_predictors(per_object), root, tmp_path / "ref", videos, **semantics)
    assert_same_outputs(tmp_path / "ours", tmp_path / "ref", per_object, ties)
    if LATER in flags:  # every frame of every video gets an output, for every object in per-object layout
        per_video = 3 * 6 if per_object else 6
        assert len(output_files(tmp_path / "ours")) == per_video * len(videos)


@pytest.mark.parity
def test_object_appearing_later_needs_the_flag(
    palette_root, random_checkpoint, official_predictors, tmp_path, capsys
):
    """With --use_all_masks clip_a's kite first shows on frame 3: clip_a fails with a hint, clip_b runs."""
    status = main(cli(palette_root, tmp_path / "ours", random_checkpoint, "--use_all_masks"))
    out = capsys.readouterr().out
    assert status == 1
    assert "clip_a: failed: object 3 appears on frame 00003 but not on the first annotated frame 00000" in out
    assert LATER in out
    assert "1 done, 0 skipped as finished, 1 failed: clip_a: object 3" in out
    assert not (tmp_path / "ours" / "clip_a").exists()
    ties = run_official(
        official_predictors(False), palette_root, tmp_path / "ref", ["clip_b"], use_all_masks=True
    )
    assert_same_outputs(tmp_path / "ours", tmp_path / "ref", False, ties)


@pytest.mark.parametrize("score_thresh", [0.0, -10.0, -20.0, -2000.0])
def test_one_object_at_a_time_merge_equals_stacked_non_overlap(score_thresh, tmp_path):
    """LabelMerger gives the labels of stacking every object's logits (-1024 where missing), applying the
    non-overlap constraint and thresholding, with the smallest id winning."""
    gen = torch.Generator().manual_seed(0)
    num_frames, h, w, ids = 3, 9, 11, [2, 5, 7]
    logits = torch.randn(len(ids), num_frames, h, w, generator=gen) * 15
    logits[1, 1] = logits[0, 1]  # exact ties go to the smaller id, as argmax does
    present = {2: {0, 1, 2}, 5: {1, 2}, 7: {2}}
    merger = LabelMerger(num_frames, h, w, score_thresh, tmp_path)
    for i, obj_id in enumerate(ids):
        for t in range(num_frames):
            if t in present[obj_id]:
                merger.add(obj_id, t, logits[i, t].numpy())
            else:
                merger.add_missing(obj_id, t)
    for t in range(num_frames):
        stacked = torch.stack(
            [logits[i, t] if t in present[o] else torch.full((h, w), -1024.0) for i, o in enumerate(ids)]
        )
        above = apply_non_overlap(stacked[:, None])[:, 0] > score_thresh
        expected = vos_masks.objects_to_labels({o: above[i].numpy() for i, o in enumerate(ids)}, h, w)
        np.testing.assert_array_equal(merger.labels(t), expected)


# ---------------------------------------------------------------------------------------------- resume


@pytest.mark.parity
def test_interrupted_run_resumes(
    palette_root, random_checkpoint, clean_palette_run, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    argv = cli(palette_root, out, random_checkpoint)
    real_write = vos_masks.write_label_png
    written: list[Path] = []

    def interrupt_clip_b(path, labels, palette):
        if "clip_b" in str(path) and len([p for p in written if "clip_b" in str(p)]) == 3:
            raise KeyboardInterrupt
        written.append(Path(path))
        real_write(path, labels, palette)

    monkeypatch.setattr(vos_masks, "write_label_png", interrupt_clip_b)
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().out
    assert (out / "clip_a").is_dir() and not (out / "clip_b").exists()
    assert len(list((out / vos_inference.PARTIAL / "clip_b").glob("*.png"))) == 3  # half-written, hidden
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "clip_a").glob("*.png")}

    written.clear()
    monkeypatch.setattr(vos_masks, "write_label_png", lambda *a: (written.append(Path(a[0])), real_write(*a)))
    assert main(argv) == 0
    report = capsys.readouterr().out
    assert "clip_a: skipped (already done)" in report
    assert "1 done, 1 skipped as finished, 0 failed" in report
    assert not [p for p in written if "clip_a" in str(p)], "the finished video was written again"
    assert len(written) == 6, "the interrupted video is redone from its first frame"
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "clip_a").glob("*.png")} == finished
    assert not (out / vos_inference.PARTIAL / "clip_b").exists()
    assert output_files(out) == output_files(clean_palette_run)
    for rel in output_files(out):
        assert (out / rel).read_bytes() == (clean_palette_run / rel).read_bytes(), rel

    written.clear()
    assert main(argv) == 0  # everything done: nothing is loaded or written
    assert not written and "0 done, 2 skipped as finished, 0 failed" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- shards


def test_shards_cover_every_video_once():
    videos = [f"v{k}" for k in range(7)]
    for count in range(1, 5):
        parts = [shard(videos, index, count) for index in range(count)]
        assert sorted(v for part in parts for v in part) == videos
        assert all(videos.index(v) % count == i for i, part in enumerate(parts) for v in part)
    assert parse_shard("1/4") == (1, 4) and parse_shard(" 0 / 1 ") == (0, 1)


@pytest.mark.parity
def test_two_shards_write_disjoint_halves(palette_root, random_checkpoint, clean_palette_run, tmp_path):
    out = tmp_path / "out"
    assert main(cli(palette_root, out, random_checkpoint, "--shard", "0/2")) == 0
    assert sorted(os.listdir(out)) == [".partial", "clip_a"]
    assert main(cli(palette_root, out, random_checkpoint, "--shard", "1/2")) == 0
    assert sorted(p for p in os.listdir(out) if not p.startswith(".")) == ["clip_a", "clip_b"]
    assert output_files(out) == output_files(clean_palette_run)
    for rel in output_files(out):
        assert (out / rel).read_bytes() == (clean_palette_run / rel).read_bytes(), rel


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parity
def test_bad_videos_are_reported_and_skipped(palette_root, random_checkpoint, tmp_path, capsys, monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(frames_dir(palette_root) / "clip_b", frames_dir(root) / "good")
    shutil.copytree(masks_dir(palette_root) / "clip_b", masks_dir(root) / "good")
    shutil.copytree(frames_dir(palette_root) / "clip_b", frames_dir(root) / "no_masks")
    write_palette_video(root, "wrong_size", (0,), late_object=False, palette=None)
    with Image.open(masks_dir(root) / "wrong_size" / "00000.png") as image:
        image.resize((80, 48)).save(masks_dir(root) / "wrong_size" / "00000.png")
    (frames_dir(root) / "empty").mkdir()
    (masks_dir(root) / "empty").mkdir()
    for video, damage in (("unreadable", b"not a jpeg"), ("truncated", None)):
        shutil.copytree(frames_dir(palette_root) / "clip_b", frames_dir(root) / video)
        shutil.copytree(masks_dir(palette_root) / "clip_b", masks_dir(root) / video)
        frame = frames_dir(root) / video / "00002.jpg"
        data = frame.read_bytes()
        frame.write_bytes(damage if damage is not None else data[: len(data) // 2])

    shutil.copytree(frames_dir(palette_root) / "clip_b", frames_dir(root) / "crash")
    shutil.copytree(masks_dir(palette_root) / "clip_b", masks_dir(root) / "crash")
    real_run_video = vos_inference.run_video

    def run_video_with_a_bug(predictor, video_dir, *args, **kwargs):
        if Path(video_dir).name == "crash":
            raise RuntimeError("an unexpected bug")
        return real_run_video(predictor, video_dir, *args, **kwargs)

    monkeypatch.setattr(vos_inference, "run_video", run_video_with_a_bug)
    status = main(cli(root, tmp_path / "out", random_checkpoint))
    captured = capsys.readouterr()
    report = captured.out
    assert status == 1
    lines = {line.split(": failed: ")[0]: line for line in report.splitlines() if ": failed: " in line}
    assert sorted(lines) == ["crash", "empty", "no_masks", "truncated", "unreadable", "wrong_size"]
    assert "RuntimeError: an unexpected bug" in lines["crash"]
    assert "Traceback" in captured.err and "run_video_with_a_bug" in captured.err
    assert "holds no JPEG frames" in lines["empty"]
    assert "no input masks" in lines["no_masks"] and str(masks_dir(root) / "no_masks") in lines["no_masks"]
    assert "80x48" in lines["wrong_size"] and "96x64" in lines["wrong_size"]
    assert "unreadable/00002.jpg" in lines["unreadable"]
    assert "frame 2" in lines["truncated"] and "truncated/00002.jpg" in lines["truncated"]
    assert (
        "1 done, 0 skipped as finished, 6 failed: crash: RuntimeError: an unexpected bug; empty: " in report
    )
    assert output_files(tmp_path / "out") == [f"good/{t:05d}.png" for t in range(6)]
    assert not list((tmp_path / "out" / vos_inference.PARTIAL).iterdir()), (
        "failed videos leave nothing behind"
    )


# ---------------------------------------------------------------------------------------------- command line


def test_help_explains_sharding(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--shard" in text and "SLURM_ARRAY_TASK_ID" in text and "CUDA_VISIBLE_DEVICES" in text


@pytest.mark.parametrize("value", ["2/2", "1", "-1/3", "a/b", "0/0"])
def test_invalid_shard_is_an_argparse_error(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--base_video_dir",
                str(tmp_path),
                "--input_mask_dir",
                str(tmp_path),
                "--output_mask_dir",
                str(tmp_path / "o"),
                "--shard",
                value,
            ]
        )
    assert exit_info.value.code == 2
    assert "--shard" in capsys.readouterr().err


def test_model_and_checkpoint_are_exclusive(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "--base_video_dir",
                "a",
                "--input_mask_dir",
                "b",
                "--output_mask_dir",
                "c",
                "--model",
                "m",
                "--checkpoint",
                "x.pt",
            ]
        )
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parity
def test_benchmark_runs_on_a_tiny_dataset(capsys):
    from benchmarks import vos_inference as benchmark

    argv = [
        "--device",
        "cpu",
        "--videos",
        "1",
        "--frames",
        "4",
        "--frame-size",
        "96x64",
        "--image-size",
        "256",
    ]
    assert benchmark.main([*argv, "--mode", "later"]) == 0
    report = capsys.readouterr().out
    assert "median s/frame: ours" in report and "speed-up (official / ours)" in report
    iou_line = next(line for line in report.splitlines() if line.startswith("mask IoU"))
    assert float(iou_line.rsplit(" ", 1)[1]) > 0.99


def test_videos_come_from_the_list_file_or_the_sorted_folders(tmp_path):
    for name in ("b", "a10", "a9", ".hidden"):
        (tmp_path / name).mkdir()
    (tmp_path / "notes.txt").write_text("")
    assert list_videos(tmp_path) == ["a10", "a9", "b"]
    listing = tmp_path / "val.txt"
    listing.write_text(" b \n\na9\nb\n")
    assert list_videos(tmp_path, listing) == ["b", "a9"]


def test_a_run_that_cannot_start_says_why(palette_root, tmp_path, capsys):
    argv = cli(palette_root, tmp_path / "out", tmp_path / "missing.pt")
    assert main(argv) == 1
    assert "no checkpoint file at" in capsys.readouterr().err
    argv[argv.index("--base_video_dir") + 1] = str(tmp_path / "nowhere")
    assert main(argv) == 1
    assert "nowhere does not exist" in capsys.readouterr().err
