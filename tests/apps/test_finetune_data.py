"""The training data of a run: bad data found before the first step (one report with a line per problem,
training on what is left, a refusal with the report and no traceback when nothing is left), the check's
result sent to the other processes without the annotations, and data workers that outlive a job's SIGTERM."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import Dataset

from apps.finetune.arguments import parse_arguments
from apps.finetune.cli import main
from apps.finetune.distributed import Processes
from apps.finetune.micro_batches import micro_batch_loader
from apps.finetune.training_data import load_training_data
from tests.support.finetune_runs import (
    add_broken_jpeg_video,
    add_video_without_frames,
    finetune_argv,
    losses_by_step,
    write_random_checkpoint,
    write_videos,
)
from tests.support.training_data import write_coco


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


class RecordedBroadcast(Processes):
    """A process of two whose broadcast from rank 0 is recorded (rank 0) and replayed (rank 1)."""

    def __init__(self, rank: int, sent: list[bytes]) -> None:
        super().__init__(rank=rank, world_size=2)
        self.sent = sent

    def from_main(self, value):
        if self.is_main:
            self.sent.append(pickle.dumps(value))
            return value
        return pickle.loads(self.sent[0])


def test_other_processes_get_the_check_of_the_data_not_its_annotations(tmp_path, capsys):
    coco, videos = write_coco(tmp_path / "coco"), write_videos(tmp_path / "videos", count=2)
    args = parse_arguments(
        ["--data", str(coco), "--data", str(videos), "--out", str(tmp_path / "out"), "--steps", "1"]
        + ["--image-size", "32", "--frames", "2", "--objects", "2"]
    )
    sent: list[bytes] = []
    main_data = load_training_data(args, RecordedBroadcast(0, sent))
    other_data = load_training_data(args, RecordedBroadcast(1, sent))
    (payload,) = sent
    assert b"segmentation" not in payload and b"counts" not in payload  # a COCO JSON stays on disk
    assert capsys.readouterr().err.count("Training data:") == 1  # said by rank 0 alone
    assert other_data.num_videos == main_data.num_videos == 4
    for m in range(4):
        for a, b in zip(main_data.sampler.micro_batch(m, 2), other_data.sampler.micro_batch(m, 2)):
            assert a.source == b.source and a.frame_indices == b.frame_indices
            np.testing.assert_array_equal(a.frames, b.frames)
            np.testing.assert_array_equal(a.masks, b.masks)


class TerminatedWorker(Dataset):
    """Items whose worker receives the SIGTERM that torchrun or SLURM sends the whole process group."""

    def __getitem__(self, index: int) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the signal is handled here, if it is
        return index


def test_data_workers_outlive_the_sigterm_that_stops_a_job():
    # The training process finishes its step and saves: the workers it waits on must still be there.
    assert list(micro_batch_loader(TerminatedWorker(), [0, 1, 2], workers=1)) == [0, 1, 2]


@pytest.mark.slow  # starts python with torch (~5 s)
def test_a_process_exiting_with_its_loader_alive_does_not_wait_for_its_workers_forever():
    # The interpreter's exit ends the workers of a loader still referenced (by a traceback) with SIGTERM.
    script = textwrap.dedent(
        """
        from torch.utils.data import Dataset
        from apps.finetune.micro_batches import micro_batch_loader

        class Items(Dataset):
            def __getitem__(self, index):
                return index

        kept = iter(micro_batch_loader(Items(), list(range(100)), workers=2))
        print(next(kept), flush=True)
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout == "0\n", done.stderr
