"""`python -m apps.vos.eval`: J&F per object, video and dataset from mask folders, with the official
conventions (first and last frames skipped, an object scored from its first appearance), both layouts, a CSV,
and clear words about what is missing.

Frames are 20 x 30, so the boundary tolerance is 1 pixel (see test_vos_metrics.py). Object 1 is the left
columns 0-9 in the truth; predicted as columns 0-10 it has J = 200/220 and F = 1 on every frame.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from apps.vos import eval as vos_eval
from apps.vos.masks import object_folder_name, objects_to_labels, write_label_png

H, W = 20, 30
FRAMES = 5  # frames 1..3 are evaluated by default


def _columns(first: int, last: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[:, first : last + 1] = True
    return mask


def _square() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[12:16, 20:25] = True
    return mask


def _write(
    root: Path, video: str, frames: dict[int, dict[int, np.ndarray]], per_object: bool = False
) -> None:
    for t, objects in frames.items():
        name = f"{t:05d}.png"
        if per_object:
            for obj_id, mask in objects.items():
                write_label_png(root / video / object_folder_name(obj_id) / name, mask.astype(np.uint8), None)
        else:
            write_label_png(root / video / name, objects_to_labels(objects, H, W), None)


def _truth() -> dict[int, dict[int, np.ndarray]]:
    """Object 1 on every frame; object 2 (a square) from frame 2 on."""
    return {t: {1: _columns(0, 9), **({2: _square()} if t >= 2 else {})} for t in range(FRAMES)}


def _prediction(object2_early: bool = False) -> dict[int, dict[int, np.ndarray]]:
    frames = {}
    for t in range(FRAMES):
        objects = {1: _columns(0, 10)}
        if t >= 2 or (object2_early and t == 1):
            objects[2] = _square()
        frames[t] = objects
    return frames


def _run(*args: str, capsys) -> tuple[int, str, str]:
    status = vos_eval.main([*args, "--quiet"])
    out = capsys.readouterr()
    return status, out.out, out.err


def _rows(path: Path) -> list[list[str]]:
    with path.open() as handle:
        return list(csv.reader(handle))


@pytest.fixture
def roots(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _write(gt, "cars", _truth())
    _write(pred, "cars", _prediction())
    return gt, pred


def test_scores_each_object_from_its_first_appearance_and_writes_the_csv(roots, capsys):
    gt, pred = roots
    status, out, _ = _run("--gt_root", str(gt), "--pred_root", str(pred), capsys=capsys)
    assert status == 0
    rows = _rows(pred / "jf.csv")
    assert rows[0] == ["video", "object", "J", "F", "J&F"]
    j1 = 100 * 200 / 220
    # Object 1: frames 1-3, J = 90.909, F = 100. Object 2: frames 2-3 only (it appears on frame 2), exact.
    expected = [("cars", 1, j1, 100.0), ("cars", 2, 100.0, 100.0), ("mean", None, (j1 + 100) / 2, 100.0)]
    assert len(rows) == 1 + len(expected)
    for row, (video, obj, j, f) in zip(rows[1:], expected):
        assert row[0] == video and row[1] == ("" if obj is None else str(obj))
        assert float(row[2]) == pytest.approx(j, abs=1e-4)
        assert float(row[3]) == pytest.approx(f, abs=1e-4)
        assert float(row[4]) == pytest.approx((j + f) / 2, abs=1e-4)
    assert "cars" in out and "mean" in out and "J&F 97.7" in out


def test_an_object_predicted_before_it_appears_is_scored_from_that_frame(tmp_path, capsys):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _write(gt, "cars", _truth())
    _write(pred, "cars", _prediction(object2_early=True))
    evaluation = vos_eval.evaluate(gt, pred, progress=False)
    by_object = {s.object: s for s in evaluation.scores}
    # Frame 1 now counts for object 2 (predicted, not true): J = F = 0 there, 1 on frames 2 and 3.
    assert by_object[2].frames == 3
    assert by_object[2].j == pytest.approx(200 / 3) and by_object[2].f == pytest.approx(200 / 3)


def test_all_frames_includes_the_first_and_last(roots):
    gt, pred = roots
    skipped = {s.object: s.frames for s in vos_eval.evaluate(gt, pred, progress=False).scores}
    every = {s.object: s.frames for s in vos_eval.evaluate(gt, pred, all_frames=True, progress=False).scores}
    assert skipped == {1: 3, 2: 2} and every == {1: 5, 2: 3}


@pytest.mark.parametrize("gt_per_object, pred_per_object", [(True, True), (True, False), (False, True)])
def test_per_object_folders_give_the_same_scores_as_palette_pngs(tmp_path, gt_per_object, pred_per_object):
    palette_gt, palette_pred = tmp_path / "a" / "gt", tmp_path / "a" / "pred"
    _write(palette_gt, "cars", _truth())
    _write(palette_pred, "cars", _prediction())
    expected = [
        (s.object, s.j, s.f) for s in vos_eval.evaluate(palette_gt, palette_pred, progress=False).scores
    ]
    gt, pred = tmp_path / "b" / "gt", tmp_path / "b" / "pred"
    # SA-V stores every annotated frame of every object, empty or not.
    truth = {t: {1: objs[1], 2: objs.get(2, np.zeros((H, W), bool))} for t, objs in _truth().items()}
    _write(gt, "cars", truth if gt_per_object else _truth(), per_object=gt_per_object)
    _write(pred, "cars", _prediction(), per_object=pred_per_object)
    got = [(s.object, s.j, s.f) for s in vos_eval.evaluate(gt, pred, progress=False).scores]
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert [v for g in got for v in g[1:]] == pytest.approx([v for e in expected for v in e[1:]])


def test_missing_predicted_frames_are_named_and_scored_empty(roots, capsys):
    gt, pred = roots
    (pred / "cars" / "00002.png").unlink()
    status, _, err = _run("--gt_root", str(gt), "--pred_root", str(pred), capsys=capsys)
    assert status == 0
    assert "missing: cars: 1 predicted frames missing (00002.png): scored as empty predictions" in err
    by_object = {int(r[1]): r for r in _rows(pred / "jf.csv")[1:-1]}
    # Object 2 on frames 2 and 3: J = 0 then 1.
    assert float(by_object[2][2]) == pytest.approx(50.0)


def test_strict_refuses_missing_videos_and_frames_and_writes_nothing(roots, capsys):
    gt, pred = roots
    _write(gt, "dogs", _truth())
    status, out, err = _run("--gt_root", str(gt), "--pred_root", str(pred), "--strict", capsys=capsys)
    assert status == 1
    assert f"error: dogs: no prediction (expected the folder {pred / 'dogs'})" in err
    assert "nothing written" in err and not (pred / "jf.csv").exists()
    # Without --strict the video is named and left out.
    status, _, err = _run("--gt_root", str(gt), "--pred_root", str(pred), capsys=capsys)
    assert status == 0 and "missing: dogs: no prediction" in err
    assert [r[0] for r in _rows(pred / "jf.csv")[1:]] == ["cars", "cars", "mean"]


def test_many_videos_without_prediction_are_summed_up_in_one_line(roots, capsys):
    gt, pred = roots
    for k in range(7):
        _write(gt, f"train{k}", _truth())
    status, _, err = _run("--gt_root", str(gt), "--pred_root", str(pred), capsys=capsys)
    assert status == 0
    assert "missing: 7 ground-truth videos have no prediction folder and are left out: train0, " in err
    assert err.count("no prediction") == 1


def test_missing_object_folder_is_named(tmp_path, capsys):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    truth = {t: {1: objs[1], 2: objs.get(2, np.zeros((H, W), bool))} for t, objs in _truth().items()}
    _write(gt, "cars", truth, per_object=True)
    _write(pred, "cars", {t: {1: objs[1]} for t, objs in _prediction().items()}, per_object=True)
    status, _, err = _run("--gt_root", str(gt), "--pred_root", str(pred), "--strict", capsys=capsys)
    assert status == 1
    assert "cars: 3 predicted frames of object 2 missing (00001.png, 00002.png, 00003.png)" in err


def test_a_prediction_of_another_size_fails_that_video_only(roots, capsys):
    gt, pred = roots
    _write(gt, "dogs", _truth())
    small = np.zeros((10, 15), np.uint8)
    for t in range(FRAMES):
        write_label_png(pred / "dogs" / f"{t:05d}.png", small, None)
    status, _, err = _run("--gt_root", str(gt), "--pred_root", str(pred), capsys=capsys)
    assert status == 1
    assert "error: dogs: frame 00001: the prediction is 15x10 but the ground truth is 30x20 (WxH)" in err
    assert [r[0] for r in _rows(pred / "jf.csv")[1:]] == ["cars", "cars", "mean"]


def test_predicted_videos_without_truth_and_hidden_folders(roots, capsys):
    gt, pred = roots
    _write(pred, "extra", _prediction())
    _write(pred, ".partial", _prediction())  # what an interrupted apps.vos.inference run leaves
    status, _, err = _run("--gt_root", str(gt), "--pred_root", str(pred), capsys=capsys)
    assert status == 0
    assert "extra: predicted, but there is no ground truth for it" in err and ".partial" not in err


def test_unusable_roots_are_clear_errors(tmp_path, capsys):
    status, _, err = _run("--gt_root", str(tmp_path / "nope"), "--pred_root", str(tmp_path), capsys=capsys)
    assert status == 1 and f"the ground-truth root {tmp_path / 'nope'} is not a folder" in err
    (tmp_path / "empty").mkdir()
    status, _, err = _run("--gt_root", str(tmp_path / "empty"), "--pred_root", str(tmp_path), capsys=capsys)
    assert status == 1 and "holds no video folders" in err


def test_output_csv_option_and_help(roots, capsys, tmp_path):
    gt, pred = roots
    target = tmp_path / "out" / "scores.csv"
    status, out, _ = _run(
        "--gt_root", str(gt), "--pred_root", str(pred), "--output_csv", str(target), capsys=capsys
    )
    assert status == 0 and target.exists() and str(target) in out and not (pred / "jf.csv").exists()
    with pytest.raises(SystemExit) as exit_info:
        vos_eval.main(["--help"])
    assert exit_info.value.code == 0 and "--strict" in capsys.readouterr().out
