"""Bad training data is found before the first step: one report with a line per problem, training on what
is left, and a refusal with the report (no traceback) when nothing is left."""

from __future__ import annotations

import pytest

from apps.finetune.cli import main
from tests.support.finetune_runs import (
    add_broken_jpeg_video,
    add_video_without_frames,
    finetune_argv,
    losses_by_step,
    write_random_checkpoint,
    write_videos,
)


@pytest.fixture
def checkpoint(tmp_path):
    return write_random_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt")


@pytest.mark.slow  # builds the model and trains a step
def test_bad_videos_are_reported_and_training_goes_on_without_them(tmp_path, checkpoint, capsys):
    data = write_videos(tmp_path / "data", count=1)
    add_broken_jpeg_video(data)
    add_video_without_frames(data)
    assert main(finetune_argv(data, checkpoint, tmp_path / "out", steps=1)) == 0
    err = capsys.readouterr().err
    report = err[err.index("Training data:") :]
    assert "1 usable video" in report and "2 skipped" in report
    assert "broken: frame images cannot be read" in report
    assert "empty: its frame folder holds no JPEG" in report
    assert sorted(losses_by_step(tmp_path / "out")) == [1]


def test_data_with_nothing_usable_is_refused_with_the_report(tmp_path, checkpoint, capsys):
    data = tmp_path / "data"
    add_broken_jpeg_video(data)
    add_video_without_frames(data)
    code = main(finetune_argv(data, checkpoint, tmp_path / "out", steps=1))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: No usable training data")
    assert "broken: frame images cannot be read" in err and "empty: its frame folder holds no JPEG" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "last.pt").exists()


def test_a_second_data_set_that_is_unusable_is_left_out(tmp_path, checkpoint, capsys):
    good = write_videos(tmp_path / "good", count=1)
    bad = tmp_path / "bad"
    add_video_without_frames(bad)
    argv = finetune_argv(good, checkpoint, tmp_path / "out", "--data", str(bad), "--weight", "3", steps=1)
    argv[argv.index("--steps") + 1] = "1"
    code = main([*argv, "--val", str(tmp_path / "no-val")])  # stops at --val, after the data check
    err = capsys.readouterr().err
    assert code == 2
    assert f"{good} (DAVIS/MOSE/YouTube-VOS folders): 1 usable video" in err
    assert f"{bad} (DAVIS/MOSE/YouTube-VOS folders): 0 usable videos" in err
    assert "error: --val" in err and "JPEGImages/<video>/ and Annotations/<video>/" in err
